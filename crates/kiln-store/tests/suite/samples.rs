//! The farm's gauges over time: kept durably, read from a time on in
//! order, a sample at the same millisecond replacing the first, pruned by
//! age.

use super::Backend;
use kiln_core::view::{FarmSample, ShowSample};
use kiln_store::Store;

fn sample(at: i64, busy: u32) -> FarmSample {
    FarmSample {
        at,
        cores_total: 400,
        cores_busy: busy,
        shows: vec![ShowSample {
            show: "ünï 'q'".into(),
            busy,
            entitlement: 200,
        }],
        waiting: vec![],
        hosts: vec![],
    }
}

pub async fn farm_samples_over_time(b: &impl Backend) {
    let store = b.open().await;
    assert!(store.farm_samples(0).await.unwrap().is_empty());
    for (at, busy) in [(3_000, 30), (1_000, 10), (2_000, 20)] {
        store.save_farm_sample(&sample(at, busy)).await.unwrap();
    }
    store.save_farm_sample(&sample(2_000, 25)).await.unwrap();
    let all = store.farm_samples(0).await.unwrap();
    assert_eq!(
        all.iter().map(|s| (s.at, s.cores_busy)).collect::<Vec<_>>(),
        [(1_000, 10), (2_000, 25), (3_000, 30)]
    );
    assert_eq!(all[1], sample(2_000, 25), "whole, shows and all");
    assert_eq!(store.farm_samples(2_000).await.unwrap().len(), 2);
    drop(store);
    // Durable: a store opened again (as after a crash) has them.
    let store = b.open().await;
    assert_eq!(store.farm_samples(0).await.unwrap().len(), 3);
    assert_eq!(store.prune_farm_samples(2_500).await.unwrap(), 2);
    assert_eq!(store.farm_samples(0).await.unwrap(), [sample(3_000, 30)]);
}
