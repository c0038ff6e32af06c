//! Following the farm's events: the applier publishes each batch's events
//! to the [`Hub`] once they are committed; a follower catches up from the
//! store, then takes them live, and goes back to the store whenever it
//! falls behind the hub, so it misses nothing and sees nothing twice
//! (events are told apart by their number).

use crate::auth::edge::Gate;
use kiln_api::{Error, EventStream};
use kiln_core::auth::identity::Identity;
use kiln_core::auth::{authorize, Action, Credentials, Principal};
use kiln_core::event::{Event, EventKind, EventQuery};
use kiln_store::Store;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};

/// Committed batches a follower may be behind before it reads the store.
const BACKLOG: usize = 1024;
/// Events a catch-up reads at once.
const PAGE: u32 = 1000;
/// Events waiting for a slow client before its follower waits.
const QUEUE: usize = 1024;

/// A committed batch's events, with the set of their kinds, so a follower
/// of other kinds passes over a batch of 20,000 `frame.started` in one
/// test rather than 20,000.
struct Published {
    events: Vec<Event>,
    kinds: u32,
}

type Batch = Arc<Published>;

/// Where committed events are published and followed from.
pub struct Hub {
    tx: RwLock<Option<broadcast::Sender<Batch>>>,
    /// The last event published, for readers and for those who wait for
    /// it to move (webhooks).
    latest: watch::Sender<u64>,
}

impl Hub {
    /// A hub whose numbering has reached `last`.
    pub fn new(last: u64) -> Hub {
        Hub {
            tx: RwLock::new(Some(broadcast::channel(BACKLOG).0)),
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
        let tx = self.tx.read().expect("not poisoned");
        if let Some(tx) = tx.as_ref().filter(|tx| tx.receiver_count() > 0) {
            let kinds = events.iter().fold(0, |m, e| m | e.kind.bit());
            let _ = tx.send(Arc::new(Published { events, kinds }));
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
    ) -> Result<EventStream, Error> {
        let seen = gate.identity();
        let who = gate.user(&creds, crate::now_ms())?;
        let rx = match self.tx.read().expect("not poisoned").as_ref() {
            Some(tx) => tx.subscribe(),
            None => return Err(Error::Unavailable("the server is shutting down".into())),
        };
        // Read after subscribing: anything published since is in `rx`.
        let now = *self.latest.borrow();
        let (tx, out) = mpsc::channel(QUEUE);
        let follower = Follower {
            store,
            who,
            access: Access {
                gate,
                creds,
                seen,
                checked: Instant::now(),
            },
            kinds: EventKind::mask(&q.filter.kinds),
            last: q.after.unwrap_or(if q.since.is_some() { 0 } else { now }),
            q,
            tx,
        };
        tokio::spawn(follower.run(rx));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out)))
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

struct Follower<S> {
    store: Arc<S>,
    who: Principal,
    access: Access,
    q: EventQuery,
    /// The last event number handled (sent or filtered out).
    last: u64,
    /// The kinds followed, as [`EventKind::mask`] gives them.
    kinds: u32,
    tx: mpsc::Sender<Result<Event, Error>>,
}

/// The client went away: stop following.
struct Gone;

impl<S: Store> Follower<S> {
    async fn run(mut self, mut rx: broadcast::Receiver<Batch>) {
        if (self.q.after.is_some() || self.q.since.is_some()) && self.catch_up().await.is_err() {
            return;
        }
        loop {
            let batch = tokio::select! {
                _ = self.tx.closed() => return,
                b = rx.recv() => b,
            };
            let done = match batch {
                Ok(b) if b.kinds & self.kinds == 0 => {
                    // None of its kinds is followed: only the numbering moves.
                    let seq = b.events.last().map_or(0, |e| e.seq);
                    self.last = self.last.max(seq);
                    Ok(())
                }
                Ok(b) => self.send_all(b.events.iter()).await,
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if done.is_err() {
                return;
            }
        }
    }

    /// Reads the store from `last` on until it has nothing newer.
    async fn catch_up(&mut self) -> Result<(), Gone> {
        // `since` only picks the starting point; then numbers lead.
        let mut since = self.q.after.is_none().then_some(self.q.since).flatten();
        loop {
            let page = match self
                .store
                .events_after(self.last, since, PAGE, &self.q.filter)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let e = Error::Internal(format!("reading events: {e}"));
                    let _ = self.tx.send(Err(e)).await;
                    return Err(Gone);
                }
            };
            since = None;
            let full = page.len() == PAGE as usize;
            self.send_all(page.iter()).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Takes the caller as the registry has it now, if it changed or a
    /// while has passed; tells the client and ends if it is refused.
    async fn recheck(&mut self) -> Result<(), Gone> {
        let now = self.access.gate.identity();
        if Arc::ptr_eq(&now, &self.access.seen) && self.access.checked.elapsed() < RECHECK {
            return Ok(());
        }
        self.access.seen = now;
        self.access.checked = Instant::now();
        match self.access.gate.user(&self.access.creds, crate::now_ms()) {
            Ok(who) => {
                self.who = who;
                Ok(())
            }
            Err(e) => {
                let _ = self.tx.send(Err(e)).await;
                Err(Gone)
            }
        }
    }

    async fn send_all<'a>(&mut self, events: impl Iterator<Item = &'a Event>) -> Result<(), Gone> {
        self.recheck().await?;
        for e in events {
            if e.seq <= self.last {
                continue;
            }
            self.last = e.seq;
            let visible = self.q.filter.matches(e)
                && authorize(&self.who, Action::Read, e.target()).is_allowed();
            if visible && self.tx.send(Ok(e.clone())).await.is_err() {
                return Err(Gone);
            }
        }
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
        let hub = Hub::new(0);
        let (identity, creds, _) = admin();
        let gate = Gate::new(identity);
        let q = EventQuery {
            filter: EventFilter {
                kinds: vec![EventKind::JobFinished, EventKind::FrameDead],
                ..EventFilter::default()
            },
            ..EventQuery::default()
        };
        let mut s = hub.follow(store, gate, creds, q).unwrap();
        tokio::task::yield_now().await;
        use EventKind::*;
        hub.publish((1..=3).map(|n| ev(n, FrameStarted)).collect());
        hub.publish(vec![ev(4, FrameStarted), ev(5, FrameDead)]);
        hub.publish((6..=9).map(|n| ev(n, FrameSucceeded)).collect());
        hub.publish(vec![ev(10, JobFinished)]);
        let got: Vec<u64> = s.by_ref().take(2).map(|e| e.unwrap().seq).collect().await;
        assert_eq!(got, [5, 10]);
        assert_eq!(*hub.latest().borrow(), 10);
    }

    #[tokio::test]
    async fn a_revoked_token_ends_its_stream_before_anything_more_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("k.db")).await.unwrap());
        let hub = Hub::new(0);
        let (mut identity, creds, token) = admin();
        let gate = Gate::new(identity.clone());
        let mut s = hub
            .follow(store, gate.clone(), creds, EventQuery::default())
            .unwrap();
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
