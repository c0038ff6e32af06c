//! The contract every `Store` backend must meet, written once against the
//! trait. A backend's test file implements [`Backend`] and instantiates the
//! checks with [`contract_tests!`].

mod events;
pub mod fixtures;
mod history;
mod identity;
mod retention;
mod samples;
mod structure;
pub mod timings;
mod webhooks;

pub use events::events_outbox;
pub use history::history_export;
pub use identity::{audit_goes_with_its_batch, identity_changes_apply_in_order};
pub use retention::archive_and_purge;
pub use samples::farm_samples_over_time;
pub use structure::structure_changes_apply_in_order;
pub use webhooks::webhooks_and_deliveries;

use fixtures::*;
use kiln_core::model::*;
use kiln_core::structure::*;
use kiln_store::{Batch, Image, MaxIds, Store};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// One database a check may open stores on, one after another.
pub trait Backend {
    type S: Store;
    /// A store on this backend's database: empty on the first call, holding
    /// whatever earlier stores committed on later ones.
    fn open(&self) -> impl Future<Output = Self::S>;
    /// Shuts a store down the orderly way.
    fn close(&self, store: Self::S) -> impl Future<Output = ()>;
}

/// One `#[tokio::test]` per check, each on a fresh database from `$fresh`.
macro_rules! contract_tests {
    ($fresh:expr; $($check:ident),+ $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            suite::$check(&$fresh).await;
        }
    )+};
}

fn assert_image(image: &Image, batch: &Batch) {
    assert_eq!(image.jobs, batch.jobs);
    assert_eq!(image.layers, batch.layers);
    assert_eq!(image.frames, batch.frames);
    assert_eq!(image.hosts, batch.hosts);
    let running: Vec<Attempt> = batch
        .attempts
        .iter()
        .filter(|a| a.outcome.is_none())
        .cloned()
        .collect();
    assert_eq!(image.running_attempts, running);
    assert_eq!(image.structure, applied(&[], &batch.structure));
}

/// The records left after `changes` are applied in order to `start`, by
/// kind then key: what a load must return.
pub(crate) fn applied(start: &[Record], changes: &[Change]) -> Vec<Record> {
    let mut map: BTreeMap<(String, String), Record> = start
        .iter()
        .map(|r| ((r.kind().to_owned(), r.key()), r.clone()))
        .collect();
    for c in changes {
        match c {
            Change::Put(r) => {
                map.insert((r.kind().to_owned(), r.key()), r.clone());
            }
            Change::Remove { kind, key } => {
                map.remove(&(kind.to_string(), key.clone()));
            }
        }
    }
    map.into_values().collect()
}

async fn assert_attempts_stored(store: &impl Store, batch: &Batch) {
    for a in &batch.attempts {
        assert_eq!(store.attempt(a.id).await.unwrap().as_ref(), Some(a));
    }
}

pub async fn empty_load(b: &impl Backend) {
    let store = b.open().await;
    let image = store.load().await.unwrap();
    assert!(image.jobs.is_empty() && image.layers.is_empty() && image.frames.is_empty());
    assert!(image.hosts.is_empty() && image.running_attempts.is_empty());
    assert!(image.structure.is_empty());
    assert_eq!(image.max_ids, MaxIds::default());
    store.commit(&Batch::default()).await.unwrap();
}

pub async fn round_trip(b: &impl Backend) {
    let store = b.open().await;
    let farm = farm();
    store.commit(&farm).await.unwrap();
    assert_image(&store.load().await.unwrap(), &farm);
    assert_attempts_stored(&store, &farm).await;
}

pub async fn upsert_updates_in_place(b: &impl Backend) {
    let store = b.open().await;
    let mut farm = farm();
    store.commit(&farm).await.unwrap();

    // Flip every field that can flip, Some to None and back included.
    let j = &mut farm.jobs[0];
    j.state = JobState::Killed;
    j.finished_at = Some(5);
    j.env.clear();
    j.depends = vec![JobId(2)];
    let j = &mut farm.jobs[1];
    j.finished_at = None;
    j.paused = false;
    let l = &mut farm.layers[0];
    l.command = Command::Argv(vec!["true".into()]);
    l.timeout_s = None;
    l.cwd = None;
    l.depends = vec![LayerDep {
        layer: "render".into(),
        per_frame: false,
    }];
    farm.layers[1].command = Command::Shell("echo".into());
    let f = &mut farm.frames[0];
    f.state = FrameState::Waiting;
    f.attempt = None;
    f.host = None;
    f.outcome = None;
    f.exit_status = None;
    f.started_at = None;
    let a = &mut farm.attempts[6];
    fixtures::finish(
        &mut farm.frames[6],
        a,
        Outcome::Succeeded,
        FrameState::Succeeded,
    );
    let l = &mut farm.layers[1];
    l.cores = CoreRequest::Exact(300);
    l.limits.clear();
    l.service = None;
    l.resources.scratch_kb = 5;
    let j = &mut farm.jobs[1];
    j.max_cores = None;
    j.avoid_hosts.clear();
    farm.jobs[0].max_cores = Some(100);
    farm.jobs[0].avoid_hosts = vec![HostId(3)];
    let h = &mut farm.hosts[2];
    h.state = HostState::Up;
    h.allocation = "paris.gpu".into();
    h.tags = vec!["manual".into()];
    let h = &mut farm.hosts[1];
    h.allocation = kiln_core::structure::DEFAULT_ALLOCATION.into();
    h.tags.clear();
    h.report.name = "r2-renamed".into();
    h.report.version = "0.2.0".into();
    h.report.tags = vec!["new".into()];
    h.state = HostState::Up;
    h.last_seen += 1;

    let changed = Batch {
        jobs: farm.jobs.clone(),
        layers: farm.layers[..2].to_vec(),
        frames: vec![farm.frames[0].clone(), farm.frames[6].clone()],
        attempts: vec![farm.attempts[6].clone()],
        hosts: vec![farm.hosts[1].clone(), farm.hosts[2].clone()],
        ..Batch::default()
    };
    store.commit(&changed).await.unwrap();
    assert_image(&store.load().await.unwrap(), &farm);
    assert_attempts_stored(&store, &farm).await;
}

pub async fn later_copy_wins(b: &impl Backend) {
    let store = b.open().await;
    let mut farm = farm();
    let mut first = farm.frames[6].clone();
    first.state = FrameState::Eaten;
    let mut early_job = farm.jobs[0].clone();
    early_job.name = "early".into();
    let mut batch = farm.clone();
    batch.frames.insert(0, first);
    batch.jobs.insert(0, early_job);
    store.commit(&batch).await.unwrap();
    assert_image(&store.load().await.unwrap(), &farm);

    // And across two statements' worth of rows.
    let many: Vec<Frame> = (0..600)
        .map(|i| frame(100 + i % 300, 1, 1, (i % 300) as u32))
        .collect();
    let mut last = many[300..].to_vec();
    for f in &mut last {
        f.cores = 7;
    }
    let batch = Batch {
        frames: [many[..300].to_vec(), last.clone()].concat(),
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    farm.frames.extend(last);
    assert_image(&store.load().await.unwrap(), &farm);
}

pub async fn batch_is_atomic(b: &impl Backend) {
    let store = b.open().await;
    let farm = farm();
    store.commit(&farm).await.unwrap();
    let before = store.load().await.unwrap();

    // Plenty of valid rows first, then two hosts with one name.
    let mut bad = Batch {
        jobs: vec![job(10, "new")],
        layers: vec![layer(10, 10, "l")],
        ..Batch::default()
    };
    bad.frames = (0..1000)
        .map(|i| frame(1000 + i, 10, 10, i as u32))
        .collect();
    let mut changed = farm.frames[6].clone();
    changed.state = FrameState::Dead;
    bad.frames.push(changed);
    // Many valid hosts before the clash, so it comes statements into the
    // batch whatever order a backend writes tables in.
    bad.hosts = (0..600).map(|i| host(100 + i, &format!("h{i}"))).collect();
    bad.hosts.extend([host(10, "twin"), host(11, "twin")]);
    bad.structure = vec![
        Change::Put(Record::Limit(Limit {
            name: "new".into(),
            max: 1,
        })),
        Change::Remove {
            kind: "show",
            key: "film".into(),
        },
    ];
    store.commit(&bad).await.expect_err("two hosts named twin");

    // A new host taking an existing host's name.
    let taken = Batch {
        jobs: vec![job(11, "x")],
        hosts: vec![host(12, "r1")],
        ..Batch::default()
    };
    store.commit(&taken).await.expect_err("r1 is taken");

    // A frame of a job that was never stored.
    let orphan = Batch {
        frames: vec![frame(2000, 99, 1, 0)],
        hosts: vec![host(13, "r13")],
        ..Batch::default()
    };
    store
        .commit(&orphan)
        .await
        .expect_err("job 99 does not exist");

    let after = store.load().await.unwrap();
    assert_image(&after, &farm);
    assert_eq!(after.max_ids, before.max_ids);

    // A failed batch leaves the store usable.
    let good = Batch {
        hosts: vec![host(10, "twin")],
        ..Batch::default()
    };
    store.commit(&good).await.unwrap();
    assert_eq!(store.load().await.unwrap().hosts.len(), 4);
}

/// A job's submit key is kept with it, and no two jobs share one: a batch
/// making a second job with a stored key fails whole. Jobs without a key
/// are many.
pub async fn submit_keys_are_unique(b: &impl Backend) {
    let store = b.open().await;
    let mut first = job(1, "a");
    first.submit_key = Some("0123456789abcdef0123456789abcdef".into());
    let batch = Batch {
        jobs: vec![first.clone(), job(2, "b"), job(3, "c")],
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    // Rewriting the keyed job itself is an update, not a clash.
    let mut again = first.clone();
    again.paused = true;
    store
        .commit(&Batch {
            jobs: vec![again.clone()],
            ..Batch::default()
        })
        .await
        .unwrap();

    let mut twin = job(4, "twin");
    twin.submit_key = first.submit_key.clone();
    let clash = Batch {
        jobs: vec![job(5, "fine"), twin],
        ..Batch::default()
    };
    store
        .commit(&clash)
        .await
        .expect_err("a second job with the same submit key");
    // Two new jobs sharing a key in one batch fail too.
    let (mut x, mut y) = (job(6, "x"), job(7, "y"));
    x.submit_key = Some("k2".into());
    y.submit_key = Some("k2".into());
    store
        .commit(&Batch {
            jobs: vec![x, y],
            ..Batch::default()
        })
        .await
        .expect_err("two new jobs with one submit key");

    b.close(store).await;
    let store = b.open().await;
    let image = store.load().await.unwrap();
    assert_eq!(image.jobs, vec![again, job(2, "b"), job(3, "c")]);
    assert_eq!(image.max_ids.job, 3);
}

pub async fn reopen_keeps_everything(b: &impl Backend) {
    let store = b.open().await;
    let mut farm = farm();
    store.commit(&farm).await.unwrap();
    b.close(store).await;

    let store = b.open().await;
    assert_image(&store.load().await.unwrap(), &farm);
    assert_attempts_stored(&store, &farm).await;

    // Dropped without closing, as a crashing server would leave it.
    farm.jobs[0].priority = 1;
    store
        .commit(&Batch {
            jobs: vec![farm.jobs[0].clone()],
            ..Batch::default()
        })
        .await
        .unwrap();
    drop(store);
    let store = b.open().await;
    let image = store.load().await.unwrap();
    assert_image(&image, &farm);
    assert_eq!(
        image.max_ids,
        MaxIds {
            job: 2,
            layer: 4,
            frame: 9,
            attempt: 7,
            host: 3,
            audit: 0,
            event: 0,
        }
    );
}

pub async fn attempt_history(b: &impl Backend) {
    let store = b.open().await;
    let farm = farm();
    store.commit(&farm).await.unwrap();
    // A frame that has no attempts yet.
    let (r1, f) = (&farm.hosts[0], &farm.frames[7]);
    // Ids out of step with attempt numbers: history is ordered by number.
    let mut history = vec![
        attempt(30, f, 2, r1),
        attempt(20, f, 3, r1),
        attempt(40, f, 1, r1),
    ];
    for a in &mut history {
        let mut frame = f.clone();
        fixtures::finish(&mut frame, a, Outcome::Failed, FrameState::Waiting);
    }
    store
        .commit(&Batch {
            attempts: history.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();
    history.sort_by_key(|a| a.number);
    assert_eq!(store.attempts(f.id).await.unwrap(), history);
    assert_eq!(
        store.attempts(farm.frames[0].id).await.unwrap(),
        vec![farm.attempts[0].clone()]
    );
    assert_eq!(store.attempts(FrameId(12345)).await.unwrap(), vec![]);
    assert_eq!(
        store.attempt(AttemptId(20)).await.unwrap(),
        Some(history[2].clone())
    );
    assert_eq!(store.attempt(AttemptId(12345)).await.unwrap(), None);
}

pub async fn running_attempts_only(b: &impl Backend) {
    let store = b.open().await;
    let mut farm = farm();
    let r2 = farm.hosts[1].clone();
    // Out of id order in the batch; the image lists them by id.
    farm.attempts.insert(0, attempt(9, &farm.frames[6], 1, &r2));
    store.commit(&farm).await.unwrap();
    let image = store.load().await.unwrap();
    let ids: Vec<AttemptId> = image.running_attempts.iter().map(|a| a.id).collect();
    assert_eq!(ids, [AttemptId(7), AttemptId(9)]);
    assert!(image.running_attempts.iter().all(|a| a.outcome.is_none()));

    let mut done = farm.attempts[0].clone();
    fixtures::finish(
        &mut farm.frames[6],
        &mut done,
        Outcome::Lost,
        FrameState::Waiting,
    );
    store
        .commit(&Batch {
            attempts: vec![done],
            ..Batch::default()
        })
        .await
        .unwrap();
    let ids: Vec<AttemptId> = store
        .load()
        .await
        .unwrap()
        .running_attempts
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, [AttemptId(7)]);
}

pub async fn max_ids(b: &impl Backend) {
    let store = b.open().await;
    let farm = farm();
    store.commit(&farm).await.unwrap();
    let image = store.load().await.unwrap();
    assert_eq!(
        image.max_ids,
        MaxIds {
            job: 2,
            layer: 4,
            frame: 9,
            attempt: 7,
            host: 3,
            audit: 0,
            event: 0,
        }
    );

    // Gaps are fine: the maximum is the maximum, not a count.
    let batch = Batch {
        jobs: vec![job(500, "far")],
        hosts: vec![host(77, "r77")],
        frames: vec![frame(1 << 40, 1, 1, 9)],
        ..Batch::default()
    };
    store.commit(&batch).await.unwrap();
    let image = store.load().await.unwrap();
    assert_eq!(
        image.max_ids,
        MaxIds {
            job: 500,
            layer: 4,
            frame: 1 << 40,
            attempt: 7,
            host: 77,
            audit: 0,
            event: 0,
        }
    );
}

pub async fn big_batch(b: &impl Backend) {
    let store = b.open().await;
    let mut farm = farm();
    let r1 = farm.hosts[0].clone();
    // Odd sizes, large enough to span several chunks of any chunked writer
    // or reader, so every partial chunk size is exercised too.
    let frames: Vec<Frame> = (0..45_678)
        .map(|i| frame(100 + i, 1, 1 + i % 3 / 2, i as u32))
        .collect();
    let attempts: Vec<Attempt> = frames[..1001]
        .iter()
        .map(|f| attempt(f.id.0, f, 1, &r1))
        .collect();
    farm.frames.extend(frames);
    farm.attempts.extend(attempts);
    store.commit(&farm).await.unwrap();
    let image = store.load().await.unwrap();
    assert_image(&image, &farm);
    assert_eq!(image.running_attempts.len(), 1002);
}

pub async fn odd_values(b: &impl Backend) {
    let store = b.open().await;
    let mut farm = farm();
    farm.hosts[0].report.load = f64::NAN;
    farm.hosts[1].report.load = f64::INFINITY;
    farm.jobs[0].name = "ünïcødé 'quotes' \"double\" ; DROP TABLE jobs; --".into();
    farm.jobs[0].env = env(&[("", ""), ("EMPTY", ""), ("NL", "a\nb")]);
    farm.layers[0].command = Command::Argv(vec![]);
    farm.layers[1].command = Command::Shell(String::new());
    farm.layers[1].limits = vec!["".into(), "a\"b'c; --".into()];
    farm.layers[1].service = Some(String::new());
    farm.hosts[1].allocation = String::new();
    farm.frames[0].reason = Some("user \"ü x\" does not exist on host h; -- \n".into());
    farm.frames[1].reason = Some(String::new());
    farm.jobs[0].submit_key = Some("k\"'; --".into());
    farm.structure.push(Change::Put(Record::Limit(Limit {
        name: "ünïcødé 'q' \"d\"; DROP TABLE structure; --".into(),
        max: u32::MAX,
    })));
    store.commit(&farm).await.unwrap();
    let mut image = store.load().await.unwrap();
    // NaN is the one value that cannot compare equal to itself.
    assert!(image.hosts[0].report.load.is_nan());
    image.hosts[0].report.load = 0.0;
    farm.hosts[0].report.load = 0.0;
    assert_image(&image, &farm);
}

pub async fn concurrent_use(b: &impl Backend) {
    let store = Arc::new(b.open().await);
    let farm = farm();
    store.commit(&farm).await.unwrap();
    let mut tasks = vec![];
    for t in 0..8i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..10i64 {
                let base = 10_000 + (t * 10 + round) * 50;
                let frames = (0..50).map(|i| frame(base + i, 1, 2, i as u32)).collect();
                store
                    .commit(&Batch {
                        frames,
                        ..Batch::default()
                    })
                    .await
                    .unwrap();
                let image = store.load().await.unwrap();
                assert!(image.frames.iter().any(|f| f.id == FrameId(base)));
                assert_eq!(store.attempts(FrameId(1)).await.unwrap().len(), 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.load().await.unwrap().frames.len(), 9 + 8 * 10 * 50);
}
