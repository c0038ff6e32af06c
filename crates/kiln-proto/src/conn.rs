//! The server's own accept loop, so no client can stall it: when file
//! descriptors run out it backs off instead of spinning on a listener that
//! stays readable; it caps connections per client address; and each
//! connection closes itself when it has not spoken in time (sent the
//! HTTP/2 preface, or for HTTP/1.1, whose clients send none, the head of a
//! whole first request) or stays idle (no request in flight, no open
//! stream) too long. With TLS,
//! each connection's handshake runs on the connection's own task (never in
//! this loop) and counts against its preface deadline. Every deadline here
//! is on tokio's clock, so tests can pause and advance it.

use futures::Stream;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::{server::TlsStream, Accept, TlsAcceptor};

/// What every HTTP/2 client sends first.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PREFACE_LEN: u64 = PREFACE.len() as u64;
/// How often a refusal or an out-of-descriptors condition is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Silent connections closed per failed accept.
const EVICT_BATCH: usize = 8;

/// Limits on client connections.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// A connection must send the HTTP/2 preface (HTTP/1.1: a first
    /// request's head) within this.
    pub preface_timeout: Duration,
    /// A connection with no request in flight (from its headers to the
    /// last byte of its response) and no open stream for this long is
    /// closed; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Connections at once from one IP address; 0: no cap.
    pub per_address: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            preface_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(300)),
            // A worker needs one connection, a CLI command one, `kiln fleet`
            // one per 64 simulated hosts: 256 leaves room for 16,000 of them.
            per_address: 256,
        }
    }
}

/// What requests know of their connection, to keep it from looking idle.
#[derive(Debug)]
pub struct Activity {
    /// Requests in flight and streams open.
    busy: AtomicUsize,
    /// When the connection was accepted: `last_ms` counts from there.
    base: Instant,
    last_ms: AtomicU64,
    /// The connection's: a request reaching the server means it spoke.
    conn: Arc<Shared>,
}

impl Activity {
    fn new(conn: Arc<Shared>) -> Activity {
        Activity {
            busy: AtomicUsize::new(0),
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            conn,
        }
    }

    fn since_base(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    pub(crate) fn touch(&self) {
        self.last_ms
            .store(self.since_base(Instant::now()), Ordering::Relaxed);
    }

    /// Marks the connection busy (a request in flight, a stream open)
    /// until the returned guard drops.
    pub(crate) fn open(self: &Arc<Self>) -> StreamGuard {
        // An HTTP/1.1 client speaks when its first request's head is whole.
        self.conn.spoke.store(true, Ordering::Relaxed);
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.touch();
        StreamGuard(self.clone())
    }

    /// How long it has been idle at `now`; `None` while busy.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        // Acquire: a request that just ended has touched `last_ms` first.
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = self.last_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(
            self.since_base(now).saturating_sub(last),
        ))
    }
}

pub(crate) struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // Idle time counts from the end of the last request.
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Release);
    }
}

/// What the accept loop knows of a connection it may have to close.
#[derive(Debug, Default)]
struct Shared {
    spoke: AtomicBool,
    /// Whether it was evicted, and the waker of its last read: one lock,
    /// so an eviction cannot fall between a read's check and its
    /// registration and go unnoticed until the preface deadline.
    state: Mutex<(bool, Option<Waker>)>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Option<Waker>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn evicted(&self) -> bool {
        self.lock().0
    }

    /// Closes a connection that has not spoken yet, to free its descriptor.
    fn evict(&self) -> bool {
        if self.spoke.load(Ordering::Relaxed) {
            return false;
        }
        let mut s = self.lock();
        if s.0 {
            return false;
        }
        s.0 = true;
        if let Some(w) = s.1.take() {
            w.wake();
        }
        true
    }

    /// A read is about to wait: true if the connection was evicted, else
    /// `waker` is woken by an eviction from now on.
    fn register(&self, waker: &Waker) -> bool {
        let mut s = self.lock();
        if !s.0 {
            s.1 = Some(waker.clone());
        }
        s.0
    }
}

/// Connections not yet past their preface, oldest first: when descriptors
/// run out, these are closed to let the ones waiting behind them in.
#[derive(Default)]
struct Silent(VecDeque<Weak<Shared>>);

impl Silent {
    fn push(&mut self, s: &Arc<Shared>) {
        self.prune();
        self.0.push_back(Arc::downgrade(s));
    }

    fn prune(&mut self) {
        while let Some(front) = self.0.front() {
            match front.upgrade() {
                Some(s) if !s.spoke.load(Ordering::Relaxed) && !s.evicted() => return,
                _ => {
                    self.0.pop_front();
                }
            }
        }
    }

    /// Closes up to `n` of the oldest; returns how many.
    fn evict(&mut self, n: usize) -> usize {
        let mut done = 0;
        while done < n {
            let Some(w) = self.0.pop_front() else { break };
            if w.upgrade().is_some_and(|s| s.evict()) {
                done += 1;
            }
        }
        done
    }
}

/// Put into every request's extensions by tonic.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    pub(crate) activity: Arc<Activity>,
}

type Table = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One of an address's connection slots, given back on drop.
struct Slot {
    table: Table,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

fn admit(table: &Table, ip: IpAddr, cap: usize) -> Option<Slot> {
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    let n = t.entry(ip).or_insert(0);
    if cap > 0 && *n >= cap {
        return None;
    }
    *n += 1;
    Some(Slot {
        table: table.clone(),
        ip,
    })
}

/// A condition worth one log line now and then, not one per event.
struct Reporter {
    last: Option<Instant>,
    count: u64,
}

impl Reporter {
    /// Counts one event; returns how many happened since the last report
    /// when it is time for the next.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.count))
    }
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Accepts connections on `listener` for as long as the returned stream is
/// read, under `limits`.
pub fn incoming(
    listener: TcpListener,
    limits: ConnLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> impl Stream<Item = Result<Conn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let tls = tls.map(TlsAcceptor::from);
    let handshakes = Arc::new(Mutex::new(Reporter {
        last: None,
        count: 0,
    }));
    tokio::spawn(async move {
        let table: Table = Default::default();
        let mut refused = Reporter {
            last: None,
            count: 0,
        };
        let mut starved = Reporter {
            last: None,
            count: 0,
        };
        let mut backoff = BACKOFF_MIN;
        let mut silent = Silent::default();
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) if out_of_descriptors(&e) => {
                    // Make room: connections that have not sent a byte of
                    // HTTP/2 yet are the likeliest to be a flood, and a
                    // real client speaks at once.
                    let evicted = silent.evict(EVICT_BATCH);
                    if let Some(n) = starved.note() {
                        tracing::error!(
                            "out of file descriptors ({e}): {n} accept(s) deferred in the last {} s; \
                             closing connections that have sent nothing yet. Raise the hard limit \
                             (ulimit -Hn, LimitNOFILE=) or lower --max-connections-per-address",
                            REPORT_EVERY.as_secs()
                        );
                    }
                    // The pending connection stays queued and the listener
                    // readable: accepting again at once would spin.
                    if evicted > 0 {
                        tokio::time::sleep(BACKOFF_MIN).await;
                    } else {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    continue;
                }
                Err(e) => {
                    // A connection reset before it was accepted, and such.
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(BACKOFF_MIN).await;
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            let Some(slot) = admit(&table, peer.ip(), limits.per_address) else {
                if let Some(n) = refused.note() {
                    tracing::warn!(
                        "refused {n} connection(s) in the last {} s: {} already has {} open \
                         (--max-connections-per-address)",
                        REPORT_EVERY.as_secs(),
                        peer.ip(),
                        limits.per_address
                    );
                }
                continue;
            };
            // Launches and replies are small messages that must not wait
            // for a delayed ACK.
            let _ = stream.set_nodelay(true);
            let io = match &tls {
                Some(t) => Io::Handshake(Box::new(t.accept(stream)), handshakes.clone()),
                None => Io::Plain(stream),
            };
            let conn = Conn::new(io, peer, slot, &limits);
            silent.push(&conn.shared);
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A connection's transport: TLS once its handshake is done.
enum Io {
    Plain(TcpStream),
    /// Failures are counted across connections and logged now and then.
    Handshake(Box<Accept<TcpStream>>, Arc<Mutex<Reporter>>),
    Tls(Box<TlsStream<TcpStream>>),
    Failed,
}

impl Io {
    /// Drives the handshake, if one is under way, from a read or a write.
    fn poll_ready(&mut self, cx: &mut Context<'_>, peer: SocketAddr) -> Poll<std::io::Result<()>> {
        let Io::Handshake(accept, failures) = self else {
            return Poll::Ready(match self {
                Io::Failed => Err(std::io::Error::other("the TLS handshake failed")),
                _ => Ok(()),
            });
        };
        match Pin::new(accept.as_mut()).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(s)) => {
                *self = Io::Tls(Box::new(s));
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                let n = failures.lock().unwrap_or_else(|e| e.into_inner()).note();
                if let Some(n) = n {
                    tracing::warn!(
                        "{n} TLS handshake(s) failed in the last {} s, the latest from {}: {e} \
                         (a client that does not trust the server's CA needs --ca FILE)",
                        REPORT_EVERY.as_secs(),
                        peer.ip()
                    );
                }
                *self = Io::Failed;
                Poll::Ready(Err(e))
            }
        }
    }
}

/// An accepted connection that closes itself when it is silent too long.
pub struct Conn {
    io: Io,
    info: ConnInfo,
    shared: Arc<Shared>,
    _slot: Slot,
    deadline: Pin<Box<Sleep>>,
    read: u64,
    /// Its first bytes are not the HTTP/2 preface: an HTTP/1.1 client,
    /// which speaks when a whole request head reaches the server.
    http1: bool,
    preface_timeout: Duration,
    idle_timeout: Option<Duration>,
}

impl Conn {
    fn new(io: Io, peer: SocketAddr, slot: Slot, limits: &ConnLimits) -> Conn {
        let shared = Arc::new(Shared::default());
        let activity = Arc::new(Activity::new(shared.clone()));
        Conn {
            io,
            info: ConnInfo {
                remote: Some(peer),
                activity,
            },
            shared,
            _slot: slot,
            deadline: Box::pin(tokio::time::sleep(limits.preface_timeout)),
            read: 0,
            http1: false,
            preface_timeout: limits.preface_timeout,
            idle_timeout: limits.idle_timeout,
        }
    }

    /// The deadline passed: why the connection must close, or `None` after
    /// moving the deadline to the next moment it could.
    fn expired(&mut self) -> Option<String> {
        if !self.shared.spoke.load(Ordering::Relaxed) {
            return Some(format!(
                "no HTTP/2 preface within {} s (nor a whole HTTP/1.1 request head)",
                self.preface_timeout.as_secs_f64()
            ));
        }
        let now = Instant::now();
        let Some(idle) = self.idle_timeout else {
            self.deadline
                .as_mut()
                .reset(now + Duration::from_secs(86_400));
            return None;
        };
        let Some(quiet) = self.info.activity.idle_for(now) else {
            // A request in flight or a stream open: not idle, however
            // quiet. Its end touches the activity, so idle counts from then.
            self.deadline.as_mut().reset(now + idle);
            return None;
        };
        if quiet >= idle {
            return Some(format!("idle for {} s", idle.as_secs()));
        }
        self.deadline.as_mut().reset(now + (idle - quiet));
        None
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let spoke = this.shared.spoke.load(Ordering::Relaxed);
        if !spoke && this.shared.register(cx.waker()) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "closed to free a file descriptor before it spoke",
            )));
        }
        // The transport always has a read pending, so this is polled (and
        // the deadline's timer armed) for the connection's whole life.
        if this.deadline.as_mut().poll(cx).is_ready() {
            if let Some(why) = this.expired() {
                tracing::debug!(peer = ?this.info.remote, "closing a connection: {why}");
                return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why)));
            }
            let _ = this.deadline.as_mut().poll(cx);
        }
        let peer = this.peer();
        std::task::ready!(this.io.poll_ready(cx, peer))?;
        let before = buf.filled().len();
        let r = match &mut this.io {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
            Io::Handshake(..) | Io::Failed => unreachable!("poll_ready settled the handshake"),
        };
        if let Poll::Ready(Ok(())) = r {
            if !spoke && !this.http1 {
                // Compare what came in against the preface, byte by byte.
                let got = &buf.filled()[before..];
                let want = &PREFACE[(this.read as usize).min(PREFACE.len())..];
                let n = got.len().min(want.len());
                this.http1 = got[..n] != want[..n];
            }
            this.read += (buf.filled().len() - before) as u64;
            if this.read >= PREFACE_LEN && !this.http1 {
                this.shared.spoke.store(true, Ordering::Relaxed);
            }
        }
        r
    }
}

/// Runs `$op` on the transport once the handshake is done.
macro_rules! on_io {
    ($this:expr, $cx:expr, |$io:ident| $op:expr) => {{
        let this = $this;
        let peer = this.peer();
        std::task::ready!(this.io.poll_ready($cx, peer))?;
        match &mut this.io {
            Io::Plain($io) => {
                let $io = Pin::new($io);
                $op
            }
            Io::Tls($io) => {
                let $io = Pin::new($io.as_mut());
                $op
            }
            Io::Handshake(..) | Io::Failed => unreachable!("poll_ready settled the handshake"),
        }
    }};
}

impl Conn {
    fn peer(&self) -> SocketAddr {
        self.info
            .remote
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        on_io!(self.get_mut(), cx, |io| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        on_io!(self.get_mut(), cx, |io| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(io) => io.is_write_vectored(),
            Io::Tls(io) => io.is_write_vectored(),
            Io::Handshake(..) | Io::Failed => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        on_io!(self.get_mut(), cx, |io| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.io, Io::Handshake(..) | Io::Failed) {
            // Nothing was said over TLS yet: dropping the socket closes it.
            return Poll::Ready(Ok(()));
        }
        on_io!(this, cx, |io| io.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests;
