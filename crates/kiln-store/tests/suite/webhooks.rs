//! Webhooks: made and deleted durably, ids never reused, cursors that only
//! move forward and survive a reopen, a delivery log that reads back newest
//! first per webhook, drops a deleted webhook's late tries, and is pruned.

use super::Backend;
use kiln_core::event::EventKind::{FrameDead, JobFinished};
use kiln_core::webhook::{Delivery, DeliveryOutcome, DeliveryQuery, Webhook};
use kiln_store::Store;

fn hook(url: &str, show: Option<&str>) -> Webhook {
    Webhook {
        id: 0,
        url: url.into(),
        secret: "s3cret".into(),
        kinds: vec![JobFinished, FrameDead],
        show: show.map(Into::into),
        owner: "wendy".into(),
        created_at: 1_000,
        delivered_seq: 7,
    }
}

fn try_of(webhook: i64, seq: u64, at: i64, outcome: DeliveryOutcome) -> Delivery {
    Delivery {
        id: 0,
        webhook,
        seq,
        kind: "job.finished".into(),
        at,
        attempt: 1,
        outcome,
        status: if outcome == DeliveryOutcome::Delivered {
            200
        } else {
            503
        },
        error: if outcome == DeliveryOutcome::Delivered {
            String::new()
        } else {
            "HTTP 503".into()
        },
        millis: 12,
    }
}

pub async fn webhooks_and_deliveries(b: &impl Backend) {
    let store = b.open().await;
    assert!(store.webhooks().await.unwrap().is_empty());
    let a = store
        .create_webhook(&hook("http://a/x", Some("film")))
        .await
        .unwrap();
    let c = store
        .create_webhook(&hook("https://c/y", None))
        .await
        .unwrap();
    assert!(c > a);
    let all = store.webhooks().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0],
        Webhook {
            id: a,
            ..hook("http://a/x", Some("film"))
        }
    );
    assert_eq!(all[1].show, None);

    let tries = vec![
        try_of(a, 8, 2_000, DeliveryOutcome::Retrying),
        try_of(a, 8, 3_000, DeliveryOutcome::Delivered),
        try_of(c, 9, 3_500, DeliveryOutcome::Delivered),
    ];
    store
        .record_deliveries(&tries, &[(a, 8), (c, 9)])
        .await
        .unwrap();
    // A cursor never moves back.
    store.record_deliveries(&[], &[(a, 5)]).await.unwrap();
    let q = |webhook, failed| DeliveryQuery {
        webhook,
        failed,
        limit: 0,
    };
    let got = store.deliveries(&q(Some(a), false), &[a, c]).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].id > got[1].id, "newest first: {got:?}");
    assert_eq!(
        got[0],
        Delivery {
            id: got[0].id,
            ..tries[1].clone()
        }
    );
    let failed = store.deliveries(&q(None, true), &[a, c]).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error, "HTTP 503");
    // Only the webhooks the caller may see.
    let only_c = store.deliveries(&q(None, false), &[c]).await.unwrap();
    assert_eq!(only_c.len(), 1);
    assert_eq!(only_c[0].webhook, c);
    assert!(store
        .deliveries(&q(None, false), &[])
        .await
        .unwrap()
        .is_empty());
    b.close(store).await;

    // Reopened: cursors and log are where they were.
    let store = b.open().await;
    let all = store.webhooks().await.unwrap();
    assert_eq!(
        all.iter().map(|w| w.delivered_seq).collect::<Vec<_>>(),
        [8, 9]
    );
    assert_eq!(
        store
            .deliveries(&q(None, false), &[a, c])
            .await
            .unwrap()
            .len(),
        3
    );

    // Deleting takes the log along; a deleted webhook's late try is dropped.
    assert!(store.delete_webhook(a).await.unwrap());
    assert!(!store.delete_webhook(a).await.unwrap());
    store
        .record_deliveries(
            &[try_of(a, 10, 4_000, DeliveryOutcome::Delivered)],
            &[(a, 10)],
        )
        .await
        .unwrap();
    assert!(store
        .deliveries(&q(Some(a), false), &[a, c])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.webhooks().await.unwrap().len(), 1);
    let d = store
        .create_webhook(&hook("http://d/", None))
        .await
        .unwrap();
    assert!(d > c, "ids are not reused: {d} after {c}");
    // Not even the highest one's.
    assert!(store.delete_webhook(d).await.unwrap());
    let e = store
        .create_webhook(&hook("http://e/", None))
        .await
        .unwrap();
    assert!(e > d, "ids are not reused: {e} after {d}");

    // Pruned by age.
    assert_eq!(store.prune_deliveries(3_500).await.unwrap(), 0);
    assert_eq!(store.prune_deliveries(4_000).await.unwrap(), 1);
    assert!(store
        .deliveries(&q(None, false), &[c, e])
        .await
        .unwrap()
        .is_empty());
    b.close(store).await;
}
