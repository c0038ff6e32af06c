//! The accept loop's connections: deadlines on a paused clock, an
//! eviction racing a read, TLS handshakes under the preface deadline.

use super::*;
use futures::StreamExt;
use std::sync::atomic::AtomicBool;
use std::task::Wake;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An eviction racing a read that is about to wait is never lost: the
/// read sees it, or its waker is woken. The two start together (both
/// spinning on one counter) at a sweep of offsets, so some land inside
/// the read's check-then-register.
#[test]
fn an_eviction_racing_a_read_is_never_lost() {
    const ROUNDS: usize = 20_000;
    let slot: Arc<Mutex<Arc<Shared>>> = Arc::default();
    // Odd: round (n - 1) / 2 may start; even: the evictor is done.
    let turn = Arc::new(AtomicUsize::new(0));
    let spin = |n: usize| {
        for _ in 0..n {
            std::hint::spin_loop();
        }
    };
    let evictor = std::thread::spawn({
        let (slot, turn) = (slot.clone(), turn.clone());
        move || {
            for i in 0..ROUNDS {
                while turn.load(Ordering::Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                let shared = slot.lock().unwrap().clone();
                spin(i % 16);
                assert!(shared.evict(), "a silent connection is evicted");
                turn.store(2 * i + 2, Ordering::Release);
            }
        }
    });
    let mut lost = 0;
    for i in 0..ROUNDS {
        let shared = Arc::new(Shared::default());
        *slot.lock().unwrap() = shared.clone();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        turn.store(2 * i + 1, Ordering::Release);
        spin((i / 16) % 16);
        let saw = shared.register(&waker);
        while turn.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
        if !saw && !flag.0.load(Ordering::SeqCst) {
            lost += 1;
        }
    }
    evictor.join().unwrap();
    assert_eq!(lost, 0, "evictions that neither the read saw nor woke it");
}

/// Client half of a connection that completed the HTTP/2 preface and
/// an empty SETTINGS frame, and the server half, read past them.
async fn spoken(limits: ConnLimits) -> (TcpStream, Conn) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Box::pin(incoming(listener, limits, None));
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut conn = incoming.next().await.unwrap().unwrap();
    let mut buf = [0u8; 33];
    conn.read_exact(&mut buf).await.unwrap();
    (client, conn)
}

/// The idle deadline is on tokio's clock: advancing it past the idle
/// time closes a connection with nothing in flight, and a request in
/// flight keeps it open however long it takes.
#[tokio::test(start_paused = true)]
async fn idle_is_decided_on_tokios_clock_and_spares_requests_in_flight() {
    let limits = ConnLimits {
        idle_timeout: Some(Duration::from_secs(300)),
        ..ConnLimits::default()
    };
    let (_client, mut conn) = spoken(limits.clone()).await;
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(1_000), conn.read(&mut buf))
        .await
        .expect("closed within the idle time, on tokio's clock");
    let e = r.expect_err("an idle connection is closed");
    assert!(e.to_string().contains("idle for 300 s"), "{e}");

    let (_client, mut conn) = spoken(limits).await;
    let busy = conn.info.activity.open();
    let r = tokio::time::timeout(Duration::from_secs(3_600), conn.read(&mut buf)).await;
    assert!(r.is_err(), "a request in flight for an hour keeps it open");
    drop(busy);
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(1_000), conn.read(&mut buf))
        .await
        .expect("closed once idle");
    assert!(r.is_err());
    assert_eq!(
        start.elapsed().as_secs(),
        300,
        "idle counts from the end of the last request"
    );
}

const PREFACE_AND_SETTINGS: &[u8; 33] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A client that opens a connection and never finishes its TLS handshake
/// is closed at the preface deadline, and holds up no one meanwhile: the
/// handshake runs on the connection's own task, not in the accept loop.
#[tokio::test]
async fn a_tls_handshake_counts_against_the_preface_deadline_and_stalls_nothing() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = crate::tls::server_config(
        made.cert.pem().as_bytes(),
        made.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ConnLimits {
        preface_timeout: Duration::from_secs(1),
        ..ConnLimits::default()
    };
    let mut incoming = Box::pin(incoming(listener, limits, Some(tls)));
    let start = Instant::now();

    // Half a ClientHello, then silence.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent.write_all(&[0x16, 0x03, 0x01, 0x00]).await.unwrap();
    let mut stalled = incoming.next().await.unwrap().unwrap();
    let stalled = tokio::spawn(async move { stalled.read(&mut [0u8; 1]).await });

    // A real client meanwhile gets through and speaks HTTP/2.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = tokio::spawn(async move {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = connector.connect(name, tcp).await.unwrap();
        c.write_all(PREFACE_AND_SETTINGS).await.unwrap();
        c.flush().await.unwrap();
        c
    });
    let mut conn = incoming.next().await.unwrap().unwrap();
    let mut buf = [0u8; 33];
    conn.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, PREFACE_AND_SETTINGS);
    let _client = client.await.unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "the stalled handshake held up the next: {:?}",
        start.elapsed()
    );

    let e = stalled
        .await
        .unwrap()
        .expect_err("the stalled handshake is cut");
    assert!(
        e.to_string().contains("no HTTP/2 preface within 1 s"),
        "{e}"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// An HTTP/1.1 client sends no preface: it has spoken once a whole
/// request head reached the server, not after 24 bytes of one. A client
/// that trickles a head it never finishes is cut at the preface deadline;
/// one whose request arrived is not.
#[tokio::test(start_paused = true)]
async fn an_http1_client_speaks_with_a_whole_request_head_not_with_24_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ConnLimits {
        preface_timeout: Duration::from_secs(5),
        idle_timeout: Some(Duration::from_secs(300)),
        ..ConnLimits::default()
    };
    let mut incoming = Box::pin(incoming(listener, limits, None));
    let head = b"GET /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\n";

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(head).await.unwrap();
    let mut conn = incoming.next().await.unwrap().unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], head);
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(60), conn.read(&mut buf))
        .await
        .expect("a head never finished is cut at the preface deadline");
    let e = r.expect_err("closed");
    assert!(
        e.to_string().contains("no HTTP/2 preface within 5 s"),
        "{e}"
    );
    assert!(start.elapsed() <= Duration::from_secs(5));

    // The same head, finished: the request reaches the server, which
    // marks it in flight; the connection then lives by the idle rule.
    let mut fine = TcpStream::connect(addr).await.unwrap();
    fine.write_all(head).await.unwrap();
    let mut conn = incoming.next().await.unwrap().unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], head);
    drop(conn.info.activity.open());
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(1_000), conn.read(&mut buf))
        .await
        .expect("closed once idle");
    let e = r.expect_err("closed");
    assert!(e.to_string().contains("idle for 300 s"), "{e}");
    assert_eq!(start.elapsed().as_secs(), 300);
}
