//! The contract for structure records (facilities, allocations, shows,
//! subscriptions, limits, services): puts and removes apply in order,
//! within the batch's one transaction, and survive a reopen.

use super::fixtures::farm;
use super::{applied, Backend};
use kiln_core::structure::*;
use kiln_store::{Batch, Store};

pub async fn structure_changes_apply_in_order(b: &impl Backend) {
    let store = b.open().await;
    let farm = farm();
    store.commit(&farm).await.unwrap();
    let before = applied(&[], &farm.structure);
    let limit = |name: &str, max| {
        Record::Limit(Limit {
            name: name.into(),
            max,
        })
    };
    let remove = |kind, key: &str| Change::Remove {
        kind,
        key: key.into(),
    };
    let film = Show::new("film");
    let changes = vec![
        // The later of two puts of one key wins.
        Change::Put(limit("arnold", 3)),
        Change::Put(limit("arnold", 5)),
        // Removed then put back: present, as put.
        remove("show", "film"),
        Change::Put(Record::Show(film)),
        // Put then removed: absent.
        Change::Put(limit("gone", 1)),
        remove("limit", "gone"),
        // A removal of what is not there changes nothing.
        remove("limit", "never"),
        remove("subscription", "film@paris.gpu"),
        remove("service", "arnold@film"),
        // One key in two kinds: two records.
        Change::Put(Record::Facility(Facility {
            name: "arnold".into(),
        })),
    ];
    let batch = Batch {
        structure: changes.clone(),
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    let want = applied(&before, &changes);
    assert_eq!(store.load().await.unwrap().structure, want);
    assert!(want.contains(&limit("arnold", 5)) && !want.contains(&limit("gone", 1)));
    b.close(store).await;

    let store = b.open().await;
    let image = store.load().await.unwrap();
    assert_eq!(image.structure, want);
    // Nothing else moved.
    assert_eq!(image.jobs, farm.jobs);
    assert_eq!(image.hosts, farm.hosts);
}
