//! Events end to end with the real binary: a job's events over SSE in
//! order; a reconnect with `Last-Event-ID` gets exactly what it missed,
//! also across a SIGKILLed server; an artist sees no other show's events;
//! `kiln events --follow` prints them.

mod common;

use common::Farm;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::Value;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// One SSE message.
#[derive(Debug, Clone)]
struct Msg {
    id: u64,
    kind: String,
    data: Value,
}

/// An SSE subscription over HTTP/1.1 and TLS, read on a thread of its own;
/// dropping it closes the connection.
struct Sse {
    rx: mpsc::Receiver<Msg>,
}

/// Opens `GET /api/v1/events<query>`; returns the status and, on 200, the
/// stream. The answer's headers come only once the server has subscribed.
fn subscribe(farm: &Farm, token: &str, query: &str, last: Option<u64>) -> (u16, Option<Sse>) {
    let ca = std::fs::read(farm.path("data/ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (port, token, path) = (
        farm.port,
        token.to_string(),
        format!("/api/v1/events{query}"),
    );
    let (status_tx, status_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let io = hyper_util::rt::TokioIo::new(tls);
            let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let mut req = hyper::Request::get(path)
                .header("host", "localhost")
                .header("authorization", format!("Bearer {token}"));
            if let Some(id) = last {
                req = req.header("last-event-id", id.to_string());
            }
            let res = s
                .send_request(req.body(Empty::<Bytes>::new()).unwrap())
                .await
                .unwrap();
            let _ = status_tx.send(res.status().as_u16());
            let mut body = res.into_body();
            let mut buf = String::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buf.push_str(std::str::from_utf8(&data).unwrap());
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    if let Some(m) = parse(&block) {
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    });
    let status = status_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    (status, (status == 200).then_some(Sse { rx }))
}

/// A message block; `None` for a keep-alive comment.
fn parse(block: &str) -> Option<Msg> {
    let (mut id, mut kind, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event:") {
            kind = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            data = Some(serde_json::from_str(v.trim()).unwrap_or(Value::String(v.into())));
        }
    }
    Some(Msg {
        id: id?,
        kind: kind?,
        data: data?,
    })
}

impl Sse {
    /// Messages until one matches `last` (included).
    fn until(&self, what: &str, last: impl Fn(&Msg) -> bool) -> Vec<Msg> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    let done = last(&m);
                    got.push(m);
                    if done {
                        return got;
                    }
                }
                Err(e) => panic!("no {what} ({e}); got {got:#?}"),
            }
        }
    }

    /// Nothing more arrives for `quiet`.
    fn silent(&self, quiet: Duration) {
        if let Ok(m) = self.rx.recv_timeout(quiet) {
            panic!("unexpected event {m:?}");
        }
    }
}

fn finished(job: &str) -> impl Fn(&Msg) -> bool + '_ {
    move |m| m.kind == "job.finished" && m.data["job"] == job
}

fn job(name: &str, show: &str, frames: &str) -> String {
    format!(
        "name: {name}\nshow: {show}\nlayers:\n  - {{name: a, command: 'true', frames: {frames}}}\n"
    )
}

fn ids(msgs: &[Msg]) -> Vec<u64> {
    msgs.iter().map(|m| m.id).collect()
}

/// Numbers from `first`, one after another: nothing missed, nothing twice.
fn contiguous(msgs: &[Msg], first: u64) {
    let want: Vec<u64> = (first..first + msgs.len() as u64).collect();
    assert_eq!(ids(msgs), want, "{msgs:#?}");
}

#[test]
fn a_jobs_events_arrive_in_order_and_a_reconnect_misses_nothing_even_across_a_kill() {
    let mut farm = Farm::start_tls(1, 2);
    let admin = common::admin_token(&farm.path("data"));

    let (status, s) = subscribe(&farm, &admin, "?job=ev1", None);
    assert_eq!(status, 200);
    let s = s.unwrap();
    farm.submit("ev1", &job("ev1", "film", "1-3"));
    let got = s.until("ev1 finished", finished("ev1"));
    let kinds: Vec<&str> = got.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds[..2], ["job.submitted", "job.started"], "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "frame.started").count(), 3);
    assert_eq!(kinds.iter().filter(|k| **k == "frame.succeeded").count(), 3);
    assert!(got.windows(2).all(|w| w[0].id < w[1].id), "{got:#?}");
    for m in &got {
        assert_eq!(m.data["seq"], m.id, "id is the event's number");
        assert_eq!(m.data["kind"], m.kind.as_str());
        assert_eq!(m.data["job"], "ev1");
        assert_eq!(m.data["show"], "film");
    }
    for f in ["1", "2", "3"] {
        let at = |kind: &str| {
            got.iter()
                .position(|m| m.kind == kind && m.data["frame"] == f)
                .unwrap_or_else(|| panic!("no {kind} of frame {f}: {got:#?}"))
        };
        assert!(at("frame.started") < at("frame.succeeded"));
        assert_eq!(got[at("frame.started")].data["host"], "w0");
    }
    let seen = got.last().unwrap().id;
    drop(s);

    // Away while ev2 runs; back with the last number seen: exactly the
    // events after it (the admin sees every event, so they are numbered
    // one after another).
    farm.submit("ev2", &job("ev2", "film", "1-2"));
    farm.wait_status("ev2", "FINISHED", Duration::from_secs(30));
    let (_, s) = subscribe(&farm, &admin, "", Some(seen));
    let missed = s.unwrap().until("ev2 finished", finished("ev2"));
    contiguous(&missed, seen + 1);
    assert_eq!(missed[0].kind, "job.submitted", "{missed:#?}");
    let last = missed.last().unwrap().id;

    // SIGKILL after the job finished: the events were committed with it.
    farm.kill_server();
    farm.start_server();
    let (_, s) = subscribe(&farm, &admin, "", Some(seen));
    let again = s.unwrap().until("ev2 finished", finished("ev2"));
    assert_eq!(ids(&again), ids(&missed), "durable across a SIGKILL");
    let (_, s) = subscribe(&farm, &admin, "?after=0", Some(last));
    let s = s.unwrap();
    farm.submit("ev3", &job("ev3", "film", "1"));
    let next = s.until("ev3 finished", finished("ev3"));
    contiguous(&next, last + 1);
    s.silent(Duration::from_millis(300));

    // Wrong resumption points and missing tokens are refused up front.
    assert_eq!(subscribe(&farm, &admin, "?after=x", None).0, 400);
    assert_eq!(subscribe(&farm, &admin, "?kinds=job.done", None).0, 400);
    assert_eq!(subscribe(&farm, "kiln_api_nope", "", None).0, 401);
}

#[test]
fn an_artist_sees_only_the_events_of_shows_it_may_read() {
    let farm = Farm::start_tls(1, 2);
    let admin = common::admin_token(&farm.path("data"));
    let bob = farm.user("bob", &["artist@film"]);
    farm.submit("other", &job("other", "ads", "1-2"));
    farm.wait_status("other", "FINISHED", Duration::from_secs(30));

    let (_, s) = subscribe(&farm, &bob, "?after=0", None);
    let s = s.unwrap();
    farm.submit("mine", &job("mine", "film", "1-2"));
    let got = s.until("mine finished", finished("mine"));
    // Shows and hosts are for anyone with a role (as `kiln show ls` is):
    // only job and frame events are a show's own.
    let others = |m: &&Msg| m.data["job"] == "other" || m.data["job_id"] == 1;
    assert_eq!(got.iter().filter(others).count(), 0, "{got:#?}");
    assert!(got
        .iter()
        .any(|m| m.kind == "job.submitted" && m.data["job"] == "mine"));
    assert!(got.iter().any(|m| m.kind == "host.up"), "hosts: any role");

    // The admin, from the start, sees the other show's job too.
    let (_, s) = subscribe(&farm, &admin, "?after=0&kinds=job.finished", None);
    let all = s.unwrap().until("mine finished", finished("mine"));
    let jobs: Vec<&str> = all
        .iter()
        .map(|m| m.data["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["other", "mine"]);
}

/// `kiln events ARGS` running, and its lines as JSON as they come.
fn follow_cli(farm: &Farm, args: &[&str]) -> (std::process::Child, mpsc::Receiver<Value>) {
    use std::io::BufRead;
    let mut cmd_args = vec!["events"];
    cmd_args.extend_from_slice(args);
    let mut child = common::cli(&farm.url(), &cmd_args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

#[test]
fn kiln_events_prints_them_and_follows_across_a_server_restart() {
    let mut farm = Farm::start_tls(1, 2);
    let (mut child, rx) = follow_cli(
        &farm,
        &["--follow", "--json", "--show", "tv", "--since", "0"],
    );
    let until = |name: &str| {
        let mut got = Vec::new();
        loop {
            let e = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no {name} finished ({e}): {got:#?}"));
            let done = e["kind"] == "job.finished" && e["job"] == name;
            got.push(e);
            if done {
                return got;
            }
        }
    };
    farm.submit("tv1", &job("tv1", "tv", "1-2"));
    let first = until("tv1");
    assert_eq!(first[0]["kind"], "show.changed", "{first:#?}");
    assert_eq!(first[1]["kind"], "job.submitted", "{first:#?}");

    // The server dies; `kiln events` waits for it and resumes after the
    // last event it printed.
    farm.kill_server();
    farm.start_server();
    farm.submit("tv2", &job("tv2", "tv", "1"));
    let second = until("tv2");
    assert_eq!(second[0]["kind"], "job.submitted", "{second:#?}");
    let seqs: Vec<u64> = first
        .iter()
        .chain(&second)
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    child.kill().unwrap();
    child.wait().unwrap();

    // Without --follow: what is there, then it exits.
    let out = farm.kiln(&[
        "events",
        "--kinds",
        "job.finished",
        "--since",
        "0",
        "--json",
    ]);
    let jobs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["job"].clone())
        .collect();
    assert_eq!(jobs, ["tv1", "tv2"]);
    let table = farm.kiln(&["events", "--job", "tv2"]);
    let line = table
        .lines()
        .find(|l| l.contains("frame.succeeded"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.ends_with("job tv2 frame a/1 try 1 host w0"), "{table}");
    assert!(!table.contains("tv1"), "{table}");
    let err = farm.kiln_fails(&["events", "--kinds", "job.done"]);
    assert!(err.contains("job.done"), "{err}");
}

#[test]
fn events_older_than_the_retention_are_pruned_keeping_the_newest() {
    let mut farm = Farm::start_tls(1, 2);
    farm.submit("old", &job("old", "film", "1"));
    farm.wait_status("old", "FINISHED", Duration::from_secs(30));
    let all = |farm: &Farm| -> Vec<Value> {
        farm.kiln(&["events", "--since", "0", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let before = all(&farm);
    let newest = before.last().unwrap()["seq"].as_u64().unwrap();
    assert!(before.len() > 3, "{before:#?}");
    std::thread::sleep(Duration::from_millis(1500));
    // The server prunes at its first tick, then once a minute.
    farm.term_server();
    farm.start_server_with(&["--event-retention", "1s"], None);
    common::wait_until(Duration::from_secs(20), || all(&farm).len() == 1);
    assert_eq!(all(&farm)[0]["seq"], newest, "the newest is kept");
    farm.submit("new", &job("new", "film", "1"));
    farm.wait_status("new", "FINISHED", Duration::from_secs(30));
    let after = all(&farm);
    assert_eq!(after[1]["seq"].as_u64(), Some(newest + 1), "{after:#?}");
    let err = farm.kiln_fails(&["events", "--since", "yesterday"]);
    assert!(err.contains("--since"), "{err}");
}

/// A follower cut off before any event came resumes from where its stream
/// began (the server says where, first), so what was committed while it
/// was away still reaches it.
#[test]
fn kiln_events_cut_off_before_any_event_still_misses_nothing() {
    let mut farm = Farm::start_tls(1, 2);
    let (mut child, rx) = follow_cli(&farm, &["--follow", "--json", "--kinds", "job.submitted"]);
    // Following, with nothing to print yet.
    std::thread::sleep(Duration::from_secs(1));
    farm.kill_server();
    // Away long enough that its next try comes seconds later: the job is
    // submitted before it is back.
    std::thread::sleep(Duration::from_secs(2));
    farm.start_server();
    farm.submit("while-away", &job("while-away", "tv", "1"));
    let e = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the job submitted while it was away never came");
    assert_eq!(e["job"], "while-away", "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
}
