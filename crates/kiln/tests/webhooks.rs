//! Webhooks end to end with the real binary and a real HTTP receiver: each
//! delivery is signed (checked with the secret the CLI printed), a failing
//! receiver gets the event again with backoff and the log shows each try,
//! events made while the receiver is down and the server is SIGKILLed are
//! delivered after the restart (at least once, none lost), filters hold,
//! wranglers of one show cannot make farm-wide webhooks, bad input is
//! refused with the field named, and a deleted webhook sends nothing more.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One POST as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    status: u16,
}

impl Got {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP/1.1 receiver on a port of its own: answers 503 to the first
/// `fail_first` requests, then 200; keeps every request it read.
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    fn start(port: u16, fail_first: u32) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failures = Arc::new(AtomicU32::new(fail_first));
        let (g, s) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (g, s, f) = (g.clone(), s.clone(), failures.clone());
                        std::thread::spawn(move || serve(conn, &g, &s, &f));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Receiver { got, stop }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn delivered(&self) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.status == 200).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn serve(
    conn: TcpStream,
    got: &Mutex<Vec<Got>>,
    stop: &std::sync::atomic::AtomicBool,
    failures: &AtomicU32,
) {
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) if !stop.load(Ordering::SeqCst) => continue,
            Err(_) => return,
        }
        if stop.load(Ordering::SeqCst) {
            return; // a receiver that went away mid-stream
        }
        assert!(line.starts_with("POST "), "{line}");
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let fail = failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let status = if fail { 503 } else { 200 };
        got.lock().unwrap().push(Got {
            headers,
            body,
            status,
        });
        let text = if fail { "Service Unavailable" } else { "OK" };
        write!(w, "HTTP/1.1 {status} {text}\r\ncontent-length: 0\r\n\r\n").unwrap();
    }
}

fn now_secs() -> i64 {
    (now_ms() / 1000) as i64
}

fn signed(g: &Got, secret: &str) -> bool {
    let sig = &g.headers["kiln-signature"];
    kiln_server::webhooks::sign::verify(secret, sig, &g.body, now_secs(), 300).is_ok()
}

fn seqs(gs: &[Got]) -> Vec<u64> {
    gs.iter()
        .map(|g| g.event()["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn deliveries_are_signed_retried_and_survive_a_killed_server() {
    let mut farm = Farm::start_tls(1, 2);
    let port = free_port();
    let rx = Receiver::start(port, 2);
    let url = format!("http://127.0.0.1:{port}/hooks/kiln?from=test");

    // Bad input changes nothing and says what to fix.
    let e = farm.kiln_fails(&["webhook", "create", &url, "--events", "job.done"]);
    assert!(e.contains("job.done") && e.contains("job.finished"), "{e}");
    let e = farm.kiln_fails(&["webhook", "create", "ftp://x/", "--events", "all"]);
    assert!(e.contains("url:") && e.contains("http"), "{e}");
    let e = farm.kiln_fails(&[
        "webhook", "create", &url, "--events", "all", "--show", "nope",
    ]);
    assert!(e.contains("show") && e.contains("nope"), "{e}");
    let e = farm.kiln_fails(&[
        "webhook", "create", &url, "--events", "all", "--secret", "short",
    ]);
    assert!(e.contains("secret:"), "{e}");
    assert_eq!(farm.json(&["webhook", "list"]), serde_json::json!([]));

    let out = farm.try_kiln(&[
        "webhook",
        "create",
        &url,
        "--events",
        "job.finished,frame.succeeded",
    ]);
    assert!(out.status.success(), "{out:?}");
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(secret.len(), 64, "{secret}");
    let hooks = farm.json(&["webhook", "list"]);
    let id = hooks[0]["id"].as_i64().unwrap();
    assert_eq!(hooks[0]["url"], url.as_str());
    assert_eq!(hooks[0].get("secret"), None, "a listing never shows it");

    // A job of three frames: three frame.succeeded and one job.finished,
    // the first of them refused twice with 503 before it is taken.
    let one = farm.submit("one", &one_layer("one", "echo hi", "1-3"));
    farm.wait_status(&one, "FINISHED", Duration::from_secs(60));
    wait_until(Duration::from_secs(30), || rx.delivered().len() >= 4);
    let got = rx.got();
    assert_eq!(got[0].status, 503);
    assert_eq!(got[1].status, 503);
    assert_eq!(
        got[0].headers["kiln-event-id"], got[2].headers["kiln-event-id"],
        "the refused event is sent again"
    );
    assert_eq!(got[2].headers["kiln-delivery-attempt"], "3");
    for g in &got {
        assert!(signed(g, &secret), "bad signature: {g:?}");
        assert!(!signed(g, "not-the-secret-at-all"));
        assert_eq!(g.headers["content-type"], "application/json");
        assert_eq!(g.headers["kiln-webhook-id"], id.to_string());
        let e = g.event();
        assert_eq!(g.headers["kiln-event"], e["kind"].as_str().unwrap());
        assert_eq!(g.headers["kiln-event-id"], e["seq"].to_string());
    }
    let delivered = rx.delivered();
    let kinds: Vec<String> = delivered
        .iter()
        .map(|g| g.event()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "frame.succeeded").count(),
        3,
        "{kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "job.finished", "{kinds:?}");
    let s = seqs(&delivered);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "in order: {s:?}");

    // The log shows each try, newest first.
    let log = farm.json(&["webhook", "deliveries", &id.to_string()]);
    let log = log.as_array().unwrap();
    wait_until(Duration::from_secs(5), || {
        farm.json(&["webhook", "deliveries"])
            .as_array()
            .unwrap()
            .len()
            >= 6
    });
    let log2 = farm.json(&["webhook", "deliveries", "--failed"]);
    let failed = log2.as_array().unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed
        .iter()
        .all(|d| d["status"] == 503 && d["outcome"] == "retrying" && d["error"] == "HTTP 503"));
    assert!(log.len() <= 6, "{log:?}");
    let table = farm.kiln(&["webhook", "deliveries"]);
    assert!(
        table.contains("retrying") && table.contains("delivered"),
        "{table}"
    );

    // The receiver goes away; a job finishes; the server is SIGKILLed and
    // restarted; the receiver comes back: what it missed arrives.
    drop(rx);
    std::thread::sleep(Duration::from_millis(300));
    let two = farm.submit("two", &one_layer("two", "echo hi", "1-2"));
    farm.wait_status(&two, "FINISHED", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    let listed = farm.json(&["webhook", "list"]);
    assert!(
        listed[0]["failing"]["tries"].as_u64().unwrap() >= 1,
        "{listed}"
    );
    assert!(
        listed[0]["failing"]["error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{listed}"
    );
    assert!(farm.kiln(&["webhook", "list"]).contains("failing since"));
    farm.kill_server();
    farm.start_server_with(&[], None);
    let rx = Receiver::start(port, 0);
    wait_until(Duration::from_secs(30), || {
        rx.delivered()
            .iter()
            .any(|g| g.event()["kind"] == "job.finished" && g.event()["job"] == "two")
    });
    let again = rx.delivered();
    for g in &again {
        assert!(signed(g, &secret), "bad signature after restart: {g:?}");
    }
    let two_frames = again
        .iter()
        .filter(|g| g.event()["kind"] == "frame.succeeded" && g.event()["job"] == "two")
        .map(|g| g.event()["frame"].as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(two_frames.len(), 2, "none lost: {again:?}");
    // At least once: a redelivery repeats an event whole, never a new one
    // out of order.
    let s = seqs(&again);
    assert!(s.windows(2).all(|w| w[0] <= w[1]), "{s:?}");
    assert!(*s.first().unwrap() > *seqs(&delivered).last().unwrap() - 1);

    // Who may: an artist may not make webhooks; a wrangler of one show may
    // for that show only, and sees only those.
    let artist = farm.user("ann", &["artist"]);
    let out = farm.kiln_as(
        Some(&artist),
        &["webhook", "create", &url, "--events", "all"],
    );
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("may not manage the webhooks of the farm"), "{e}");
    farm.kiln(&["show", "create", "ghost"]);
    let wrangler = farm.user("wes", &["wrangler@ghost"]);
    let out = farm.kiln_as(
        Some(&wrangler),
        &[
            "webhook", "create", &url, "--events", "all", "--show", "ghost", "--json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = farm.kiln_as(Some(&wrangler), &["webhook", "list", "--json"]);
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.as_array().unwrap().len(), 1, "{theirs}");
    assert_eq!(theirs[0]["id"], made["webhook"]["id"]);
    let out = farm.kiln_as(Some(&wrangler), &["webhook", "delete", &id.to_string()]);
    assert!(
        !out.status.success(),
        "a show's wrangler deleted a farm-wide webhook"
    );
    let audit = farm.kiln(&["audit"]);
    assert!(audit.contains("webhook create"), "{audit}");

    // Sent on its owner's authority: while wes is no wrangler of ghost,
    // the webhook holds (nothing skipped), and goes on when the role is back.
    let theirs = made["webhook"]["id"].as_i64().unwrap();
    farm.kiln(&["revoke", "wrangler", "wes", "--show", "ghost"]);
    let ghostly = farm.submit(
        "ghostly",
        "name: ghostly\nshow: ghost\nlayers: [{name: r, command: 'true', frames: 1}]\n",
    );
    assert!(!ghostly.is_empty());
    // Its job.submitted is the event held (ghost has no cores to run it).
    wait_until(Duration::from_secs(20), || {
        farm.json(&["webhook", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|w| {
                w["id"] == theirs
                    && w["failing"]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("owner wes may no longer"))
            })
    });
    let of_ghostly = |rx: &Receiver| {
        rx.delivered()
            .iter()
            .filter(|g| g.event()["job"] == "ghostly")
            .count()
    };
    assert_eq!(of_ghostly(&rx), 0, "delivered without its owner's rights");
    farm.kiln(&["grant", "wrangler", "wes", "--show", "ghost"]);
    wait_until(Duration::from_secs(30), || {
        rx.delivered()
            .iter()
            .any(|g| g.event()["job"] == "ghostly" && g.event()["kind"] == "job.submitted")
    });

    // Deleted: nothing more is sent.
    farm.kiln(&["webhook", "delete", &id.to_string()]);
    farm.kiln(&["webhook", "delete", &made["webhook"]["id"].to_string()]);
    assert_eq!(farm.json(&["webhook", "list"]), serde_json::json!([]));
    let before = rx.got().len();
    let three = farm.submit("three", &one_layer("three", "true", "1"));
    farm.wait_status(&three, "FINISHED", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(rx.got().len(), before, "a deleted webhook delivered");
    let e = farm.kiln_fails(&["webhook", "delete", &id.to_string()]);
    assert!(e.contains("no webhook"), "{e}");
}
