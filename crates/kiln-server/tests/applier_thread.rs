//! A huge submit is work in proportion to the job (a frame record each,
//! all committed), and it must not hold the server's runtime: the server
//! runs here on a runtime of one thread, and a timer on that runtime must
//! keep firing on time while a job of 100,000 frames is created.

use kiln_core::farm::FarmConfig;
use kiln_proto::client::Client;
use kiln_server::{serve, ServerConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRAMES: u32 = 100_000;

#[test]
fn a_huge_submit_leaves_the_runtime_free() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        farm: FarmConfig::default(),
        connections: Default::default(),
        tls: kiln_server::tls::Tls::Plaintext,
        ldap: None,
        retention: Default::default(),
        event_retention: kiln_server::DEFAULT_EVENT_RETENTION,
        metrics_public: false,
        sample_every: kiln_server::history::DEFAULT_SAMPLE_EVERY,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let on_server = rt.handle().clone();
    // As `kiln server` runs it: on the runtime, from the main thread.
    let server = std::thread::spawn(move || {
        rt.block_on(serve(config, listener, async {
            let _ = stopped.await;
        }))
        .unwrap();
    });
    // How late a 5 ms timer on the server's runtime fires, at worst.
    let late_ms = Arc::new(AtomicU64::new(0));
    let late = late_ms.clone();
    on_server.spawn(async move {
        loop {
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(5)).await;
            let ms = t.elapsed().as_millis().saturating_sub(5) as u64;
            late.fetch_max(ms, Ordering::Relaxed);
        }
    });

    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (submitted, took) = client.block_on(async {
        // As the first admin: its token is in the data directory.
        let token = loop {
            match std::fs::read_to_string(dir.path().join("admin.token")) {
                Ok(t) if !t.trim().is_empty() => break t.trim().to_string(),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let c = Client::connect_as(&url, Some(&token)).await.unwrap();
        // The server has started: what was late until now is not the submit's.
        late_ms.store(0, Ordering::Relaxed);
        let spec = format!("name: big\nlayers:\n  - {{name: a, command: x, frames: 1-{FRAMES}}}\n");
        let t = Instant::now();
        let s = c.submit(spec, String::new(), None, None).await.unwrap();
        (s, t.elapsed())
    });
    drop(client);
    let late = late_ms.load(Ordering::Relaxed);
    eprintln!(
        "submit of {FRAMES} frames took {took:?}; the runtime's timer was at most {late} ms late"
    );
    assert_eq!(submitted.frames, FRAMES);
    assert!(
        late < 250,
        "the server's runtime was held {late} ms by a submit of {took:?}"
    );
    let _ = stop.send(());
    server.join().unwrap();
}
