//! Following the farm's events: the applier publishes each batch's events
//! to the [`Hub`] once they are committed; a follower catches up from the
//! store, then takes them live, and goes back to the store whenever it
//! falls behind the hub, so it misses nothing and sees nothing twice
//! (events are told apart by their number).

use crate::auth::edge::Gate;
use kiln_api::metrics::Recorder;
use kiln_api::{Error, Following};
use kiln_core::auth::identity::Identity;
use kiln_core::auth::{authorize, Action, Credentials, Principal};
use kiln_core::event::{Event, EventKind, EventQuery};
use kiln_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// Committed batches a follower may be behind before it reads the store.
const BACKLOG: usize = 1024;
/// Events a catch-up reads at once.
const PAGE: u32 = 1000;

/// A committed batch's events, with the set of their kinds, so a follower
/// of other kinds passes over a batch of 20,000 `frame.started` in one
/// test rather than 20,000.
struct Published {
    events: Vec<Event>,
    kinds: u32,
    /// When it was published, for the delivery histogram.
    at: Instant,
}

type Batch = Arc<Published>;

/// Where committed events are published and followed from.
///
/// Followers are grouped by the kinds they follow, one channel per set
/// of kinds: a batch wakes only the followers of a kind it holds. During
/// a fill nearly every batch is `frame.started`/`frame.succeeded`, and 500
/// browsers following `job.*` would otherwise each be woken for every one
/// of them only to pass it over, on the cores the applier needs.
pub struct Hub {
    /// `None` once the server is stopping.
    tx: RwLock<Option<HashMap<u32, broadcast::Sender<Batch>>>>,
    recorder: Arc<Recorder>,
    /// The last event published, for readers and for those who wait for
    /// it to move (webhooks).
    latest: watch::Sender<u64>,
}

impl Hub {
    /// A hub whose numbering has reached `last`; followers time their
    /// deliveries into `recorder`.
    pub fn new(last: u64, recorder: Arc<Recorder>) -> Hub {
        Hub {
            tx: RwLock::new(Some(HashMap::new())),
            recorder,
            latest: watch::Sender::new(last),
        }
    }

    /// The last event's number as it moves: everything up to it is
    /// committed.
    pub fn latest(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Publishes committed events; only the applier calls this, after the
    /// commit that made them durable.
    pub fn publish(&self, events: Vec<Event>) {
        let Some(seq) = events.last().map(|e| e.seq) else {
            return;
        };
        // When each number becomes visible: bench/sse.sh lines arrivals up
        // with it.
        tracing::debug!(last = seq, "published");
        let kinds = events.iter().fold(0, |m, e| m | e.kind.bit());
        let mut events = Some(events);
        let mut batch = None;
        let mut unused = false;
        if let Some(channels) = self.tx.read().expect("not poisoned").as_ref() {
            for (mask, tx) in channels {
                if tx.receiver_count() == 0 {
                    unused = true;
                } else if mask & kinds != 0 {
                    let b = batch.get_or_insert_with(|| {
                        Arc::new(Published {
                            events: events.take().unwrap_or_default(),
                            kinds,
                            at: Instant::now(),
                        })
                    });
                    let _ = tx.send(b.clone());
                }
            }
        }
        if unused {
            // Those whose followers have all gone; a new follower of the
            // same kinds makes its channel again.
            if let Some(channels) = self.tx.write().expect("not poisoned").as_mut() {
                channels.retain(|_, tx| tx.receiver_count() > 0);
            }
        }
        self.latest.send_replace(seq);
    }

    /// Ends every follower (the server is stopping).
    pub fn close(&self) {
        self.tx.write().expect("not poisoned").take();
    }

    /// Events for the caller matching `q`, as a stream that ends when the
    /// server stops, the receiver is dropped, or the caller's credentials
    /// stop working (a revoked token, a disabled user: checked again before
    /// anything more is sent, whenever the registry has changed and at
    /// least once a second).
    pub fn follow<S: Store>(
        &self,
        store: Arc<S>,
        gate: Gate,
        creds: Credentials,
        q: EventQuery,
    ) -> Result<Following, Error> {
        let seen = gate.identity();
        let who = gate.user(&creds, crate::now_ms())?;
        let kinds = EventKind::mask(&q.filter.kinds);
        let rx = match self.tx.write().expect("not poisoned").as_mut() {
            Some(channels) => channels
                .entry(kinds)
                .or_insert_with(|| broadcast::channel(BACKLOG).0)
                .subscribe(),
            None => return Err(Error::Unavailable("the server is shutting down".into())),
        };
        // Read after subscribing: anything published since is in `rx`.
        let now = *self.latest.borrow();
        let behind = q.after.is_some() || q.since.is_some();
        let from = match (q.after, q.since) {
            (Some(a), _) => Some(a),
            (None, Some(_)) => None,
            (None, None) => Some(now),
        };
        let follower = Follower {
            store,
            who,
            access: Access {
                gate,
                creds,
                seen,
                checked: Instant::now(),
            },
            kinds,
            last: q.after.unwrap_or(if q.since.is_some() { 0 } else { now }),
            since: q.after.is_none().then_some(q.since).flatten(),
            q,
            rx,
            behind,
            pending: Pending::None,
            done: false,
            recorder: self.recorder.clone(),
        };
        // The stream is the follower itself, polled by the connection that
        // sends it: no task and no queue between the hub and the socket, so
        // a batch reaches each subscriber in one wake-up. A client that
        // reads slowly leaves its receiver behind; past BACKLOG batches it
        // reads the store instead.
        Ok(Following {
            from,
            events: Box::pin(futures::stream::unfold(follower, |mut f| async move {
                f.next().await.map(|e| (e, f))
            })),
        })
    }
}

/// How a follower checks that its caller may still follow.
struct Access {
    gate: Gate,
    creds: Credentials,
    /// The registry the principal was last checked against.
    seen: Arc<Identity>,
    checked: Instant,
}

/// Longest a follower goes on with a principal without checking it again
/// (expiry is a matter of time, not of a registry change).
const RECHECK: Duration = Duration::from_secs(1);

/// Events taken but not yet all looked at: a batch from the hub (shared
/// by every follower, not copied) or a page from the store.
enum Pending {
    None,
    Hub(Batch, usize),
    Store(Vec<Event>, usize),
}

struct Follower<S> {
    store: Arc<S>,
    who: Principal,
    access: Access,
    q: EventQuery,
    /// The last event number handled (sent or filtered out).
    last: u64,
    /// Where a first catch-up starts by time; then numbers lead.
    since: Option<kiln_core::model::Millis>,
    /// The kinds followed, as [`EventKind::mask`] gives them.
    kinds: u32,
    rx: broadcast::Receiver<Batch>,
    /// The next events come from the store, not the hub.
    behind: bool,
    pending: Pending,
    /// The stream has ended (after an error, yielded last).
    done: bool,
    recorder: Arc<Recorder>,
}

impl<S: Store> Follower<S> {
    /// The next event to send; `None` when the stream ends.
    async fn next(&mut self) -> Option<Result<Event, Error>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(e) = self.take() {
                return Some(Ok(e));
            }
            let fetched = if self.behind {
                self.read_store().await
            } else {
                match self.rx.recv().await {
                    Ok(b) if b.kinds & self.kinds == 0 => {
                        // None of its kinds is followed: only the numbering moves.
                        let seq = b.events.last().map_or(0, |e| e.seq);
                        self.last = self.last.max(seq);
                        Ok(())
                    }
                    Ok(b) => {
                        self.pending = Pending::Hub(b, 0);
                        Ok(())
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.behind = true;
                        Ok(())
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            };
            // The caller is checked before anything more is sent.
            if let Err(e) = fetched.and_then(|()| self.recheck()) {
                self.done = true;
                self.pending = Pending::None;
                return Some(Err(e));
            }
        }
    }

    /// The next pending event the caller follows and may see.
    fn take(&mut self) -> Option<Event> {
        loop {
            // From the hub, with when it was published.
            let (e, published) = match &mut self.pending {
                Pending::None => return None,
                Pending::Hub(b, i) => (b.events.get(*i).inspect(|_| *i += 1), Some(b.at)),
                Pending::Store(page, i) => (page.get(*i).inspect(|_| *i += 1), None),
            };
            let Some(e) = e else {
                self.pending = Pending::None;
                return None;
            };
            if e.seq <= self.last {
                continue;
            }
            self.last = e.seq;
            if self.q.filter.matches(e)
                && authorize(&self.who, Action::Read, e.target()).is_allowed()
            {
                if let Some(t) = published {
                    self.recorder.delivery.observe(t.elapsed());
                }
                return Some(e.clone());
            }
        }
    }

    /// Reads the next page from the store; a page that is not full means
    /// the store has nothing newer, and the hub leads again.
    async fn read_store(&mut self) -> Result<(), Error> {
        let since = self.since.take();
        let page = self
            .store
            .events_after(self.last, since, PAGE, &self.q.filter)
            .await
            .map_err(|e| Error::Internal(format!("reading events: {e}")))?;
        self.behind = page.len() == PAGE as usize;
        self.pending = Pending::Store(page, 0);
        Ok(())
    }

    /// Takes the caller as the registry has it now, if it changed or a
    /// while has passed; an error if it is refused.
    fn recheck(&mut self) -> Result<(), Error> {
        let now = self.access.gate.identity();
        if Arc::ptr_eq(&now, &self.access.seen) && self.access.checked.elapsed() < RECHECK {
            return Ok(());
        }
        self.access.seen = now;
        self.access.checked = Instant::now();
        self.who = self.access.gate.user(&self.access.creds, crate::now_ms())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use kiln_core::auth::{Grant, Right};
    use kiln_core::event::{EventFilter, EventKind};
    use kiln_store::SqliteStore;

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            at: 0,
            kind,
            job_id: Some(1),
            job: Some("j".into()),
            show: Some("s".into()),
            user: Some("u".into()),
            layer: None,
            frame: None,
            frame_id: None,
            attempt: None,
            host: None,
            detail: None,
        }
    }

    /// A registry with one admin and its token, and that token.
    fn admin() -> (Identity, Credentials, String) {
        use crate::auth::secret::{new_token, Kind};
        use kiln_core::auth::identity::{Change, Source, Token, TokenKind, User};
        let t = new_token(Kind::Api).unwrap();
        let mut id = Identity::default();
        id.apply(Change::PutUser(User {
            name: "a".into(),
            source: Source::Local,
            disabled: false,
            password: None,
            created_at: 0,
        }));
        id.apply(Change::PutGrants {
            user: "a".into(),
            grants: vec![Grant::farm(Right::Admin)],
        });
        id.apply(Change::PutToken(Token {
            id: t.id.clone(),
            user: "a".into(),
            name: "t".into(),
            hash: t.hash.clone(),
            kind: TokenKind::Api,
            created_at: 0,
            expires_at: None,
        }));
        let creds = Credentials {
            bearer: Some(t.text.clone()),
            from: None,
        };
        (id, creds, t.id)
    }

    #[tokio::test]
    async fn a_follower_of_some_kinds_gets_those_in_order_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).await.unwrap());
        let recorder = Arc::new(Recorder::default());
        let hub = Hub::new(0, recorder.clone());
        let (identity, creds, _) = admin();
        let gate = Gate::new(identity);
        let q = EventQuery {
            filter: EventFilter {
                kinds: vec![EventKind::JobFinished, EventKind::FrameDead],
                ..EventFilter::default()
            },
            ..EventQuery::default()
        };
        let mut s = hub.follow(store, gate, creds, q).unwrap().events;
        tokio::task::yield_now().await;
        use EventKind::*;
        hub.publish((1..=3).map(|n| ev(n, FrameStarted)).collect());
        hub.publish(vec![ev(4, FrameStarted), ev(5, FrameDead)]);
        hub.publish((6..=9).map(|n| ev(n, FrameSucceeded)).collect());
        hub.publish(vec![ev(10, JobFinished)]);
        let got: Vec<u64> = s.by_ref().take(2).map(|e| e.unwrap().seq).collect().await;
        assert_eq!(got, [5, 10]);
        assert_eq!(*hub.latest().borrow(), 10);
        // Each event handed over is timed; those filtered out are not.
        assert_eq!(recorder.delivery.snapshot().count, 2);
    }

    #[tokio::test]
    async fn a_batch_wakes_only_followers_of_its_kinds_and_gone_followers_free_their_channel() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).await.unwrap());
        let hub = Hub::new(0, Default::default());
        let (identity, creds, _) = admin();
        let gate = Gate::new(identity);
        let follow = |kinds: Vec<EventKind>| {
            let q = EventQuery {
                filter: EventFilter {
                    kinds,
                    ..EventFilter::default()
                },
                ..EventQuery::default()
            };
            hub.follow(store.clone(), gate.clone(), creds.clone(), q)
                .unwrap()
                .events
        };
        use EventKind::*;
        let jobs = follow(vec![JobSubmitted, JobFinished]);
        let jobs_too = follow(vec![JobFinished, JobSubmitted]);
        let mut all = follow(vec![]);
        let queued = |mask: u32| hub.tx.read().unwrap().as_ref().unwrap()[&mask].len();
        let job_mask = EventKind::mask(&[JobSubmitted, JobFinished]);
        assert_eq!(
            hub.tx.read().unwrap().as_ref().unwrap().len(),
            2,
            "one channel per set of kinds"
        );
        for n in 1..=50 {
            hub.publish(vec![ev(n, FrameStarted)]);
        }
        assert_eq!(
            queued(job_mask),
            0,
            "frame batches never reach job followers"
        );
        assert_eq!(queued(u32::MAX), 50);
        hub.publish(vec![ev(51, FrameStarted), ev(52, JobFinished)]);
        assert_eq!(queued(job_mask), 1);
        assert_eq!(all.next().await.unwrap().unwrap().seq, 1);
        drop((jobs, jobs_too));
        hub.publish(vec![ev(53, FrameStarted)]);
        let channels = hub.tx.read().unwrap().as_ref().unwrap().len();
        assert_eq!(channels, 1, "the job followers' channel went with them");
    }

    #[tokio::test]
    async fn a_follower_left_behind_reads_the_store_and_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).await.unwrap());
        let hub = Hub::new(0, Default::default());
        let (identity, creds, _) = admin();
        let q = EventQuery {
            filter: EventFilter {
                kinds: vec![EventKind::JobFinished],
                ..EventFilter::default()
            },
            ..EventQuery::default()
        };
        let mut s = hub
            .follow(store.clone(), Gate::new(identity), creds, q)
            .unwrap()
            .events;
        // Committed and published as the applier does, while the client
        // reads nothing: its receiver falls far behind the hub.
        let batches = BACKLOG as u64 + 300;
        for n in 1..=batches {
            let kind = if n % 3 == 0 {
                EventKind::JobFinished
            } else {
                EventKind::FrameStarted
            };
            let batch = kiln_store::Batch {
                events: vec![ev(n, kind)],
                ..kiln_store::Batch::default()
            };
            store.commit(&batch).await.unwrap();
            hub.publish(batch.events);
        }
        let want: Vec<u64> = (1..=batches).filter(|n| n % 3 == 0).collect();
        let got: Vec<u64> = s
            .by_ref()
            .take(want.len())
            .map(|e| e.unwrap().seq)
            .collect()
            .await;
        assert_eq!(got, want);
        // And it follows the hub again after catching up.
        hub.publish(vec![ev(batches + 1, EventKind::JobFinished)]);
        assert_eq!(s.next().await.unwrap().unwrap().seq, batches + 1);
    }

    #[tokio::test]
    async fn a_revoked_token_ends_its_stream_before_anything_more_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).await.unwrap());
        let hub = Hub::new(0, Default::default());
        let (mut identity, creds, token) = admin();
        let gate = Gate::new(identity.clone());
        let following = hub
            .follow(store, gate.clone(), creds, EventQuery::default())
            .unwrap();
        // It starts after the last event committed when it began.
        assert_eq!(following.from, Some(0));
        let mut s = following.events;
        tokio::task::yield_now().await;
        hub.publish(vec![ev(1, EventKind::JobSubmitted)]);
        assert_eq!(s.next().await.unwrap().unwrap().seq, 1);
        identity.apply(kiln_core::auth::identity::Change::RemoveToken(token));
        gate.publish(identity);
        hub.publish(vec![ev(2, EventKind::JobFinished)]);
        let e = s.next().await.unwrap().unwrap_err().to_string();
        assert!(e.contains("revoked"), "{e}");
        assert!(s.next().await.is_none(), "the stream ends");
    }
}
