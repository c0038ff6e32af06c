//! The REST API end to end with the real binary over TLS, on the server's
//! one port, over HTTP/1.1 and HTTP/2: sign-in errors as problems with the
//! CLI's texts, refusals that change nothing, idempotent submission,
//! cursor paging, and gRPC clients served beside it on the same port.

mod common;
mod rest_client;

use common::Farm;
use rest_client::{problem, Rest, Schema, Version};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn spec(name: &str, show: &str) -> String {
    format!(
        "name: {name}\nshow: {show}\nlayers:\n  - name: a\n    command: 'sleep 30'\n    frames: 1-3\n"
    )
}

#[test]
fn errors_are_problems_with_the_clis_texts_over_http1_and_http2() {
    let farm = Farm::start_tls(0, 1);
    let bob = farm.user("bob", &["artist"]);
    let alice = farm.user("alice", &["artist"]);
    for version in [Version::H1, Version::H2] {
        // No token: 401, the text the CLI prints.
        let mut anon = Rest::connect(&farm, version, None);
        let detail = problem(&anon.get("/api/v1/jobs"), 401);
        let cli = farm.kiln_as(None, &["jobs"]);
        let cli = String::from_utf8_lossy(&cli.stderr);
        let said = detail
            .strip_prefix("not logged in: ")
            .unwrap_or_else(|| panic!("{detail}"));
        assert!(said.contains("carried no token"), "{detail}");
        assert!(
            cli.contains("not logged in") && cli.contains(said),
            "REST said {detail:?}, the CLI {cli:?}"
        );

        // Bob submits; alice, an artist too, may not kill his job.
        let mut bob_c = Rest::connect(&farm, version, Some(&bob));
        let a = bob_c.post(
            "/api/v1/jobs",
            &[],
            &spec(&format!("bobs-{version:?}"), "demo"),
        );
        assert_eq!(a.status, 201, "{a:?}");
        let job = a.body["id"].to_string();
        let mut alice_c = Rest::connect(&farm, version, Some(&alice));
        let detail = problem(
            &alice_c.post(&format!("/api/v1/jobs/{job}/kill"), &[], ""),
            403,
        );
        let cli = farm.kiln_as(Some(&alice), &["kill", &job]);
        assert!(!cli.status.success());
        let cli = String::from_utf8_lossy(&cli.stderr);
        assert!(
            detail.contains(&format!("alice (artist) may not kill job {job} of bob")),
            "{detail}"
        );
        assert!(
            cli.contains(&detail),
            "REST said {detail:?}, the CLI {cli:?}"
        );
        let j = bob_c.get(&format!("/api/v1/jobs/{job}"));
        assert_eq!(j.status, 200, "{j:?}");
        assert_eq!(
            j.body["job"]["status"], "PENDING",
            "a refused kill changed the job"
        );
        // Bob may: the action answers the CLI's line.
        let a = bob_c.post(&format!("/api/v1/jobs/{job}/kill"), &[], "");
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.body["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("killed job {job}")));
        let j = bob_c.get(&format!("/api/v1/jobs/{job}"));
        assert_eq!(j.body["job"]["status"], "KILLED", "{j:?}");

        // Unknown job, route, parameter, state; bad JSON names the field.
        let d = problem(&bob_c.get("/api/v1/jobs/99999"), 404);
        let cli = farm.kiln_as(Some(&bob), &["job", "99999"]);
        assert!(String::from_utf8_lossy(&cli.stderr).contains(&d), "{d}");
        problem(&bob_c.get("/api/v1/nothing"), 404);
        let d = problem(&bob_c.get("/api/v1/jobs?colour=red"), 400);
        assert!(d.starts_with("colour: unknown query parameter"), "{d}");
        let d = problem(&bob_c.get("/api/v1/jobs?state=DONE"), 400);
        assert!(d.starts_with("state: "), "{d}");
        let d = problem(
            &bob_c.post(
                &format!("/api/v1/jobs/{job}/retry"),
                &[],
                r#"{"targets": 3}"#,
            ),
            400,
        );
        assert!(d.starts_with("targets: "), "{d}");
        let d = problem(&bob_c.post("/api/v1/jobs", &[], "name: [unclosed"), 400);
        assert!(!d.is_empty());
        let d = problem(&bob_c.call("DELETE", "/api/v1/jobs", &[], ""), 405);
        assert!(d.contains("DELETE"), "{d}");

        // whoami and hosts answer JSON.
        let w = bob_c.get("/api/v1/whoami");
        assert_eq!(w.status, 200, "{w:?}");
        assert_eq!(w.body["user"], "bob");
        let h = bob_c.get("/api/v1/hosts");
        assert_eq!(h.status, 200, "{h:?}");
        assert!(h.body["hosts"].is_array());
    }
}

#[test]
fn an_idempotency_key_makes_one_job_and_pages_walk_every_job_once() {
    let farm = Farm::start_tls(0, 1);
    let admin = common::token_for(&farm.url()).unwrap();
    let mut c = Rest::connect(&farm, Version::H2, Some(&admin));
    let key = [("idempotency-key", "the-same-key-1")];
    let first = c.post("/api/v1/jobs", &key, &spec("once", "demo"));
    assert_eq!(first.status, 201, "{first:?}");
    let again = c.post("/api/v1/jobs", &key, &spec("once", "demo"));
    assert!(again.status < 300, "{again:?}");
    assert_eq!(
        first.body["id"], again.body["id"],
        "a retried submit made a second job"
    );
    let once = c.get("/api/v1/jobs?name=once");
    assert_eq!(once.body["jobs"].as_array().unwrap().len(), 1, "{once:?}");

    // 250 jobs over two shows, submitted over HTTP/1.1 (a JSON spec).
    // Meanwhile gRPC clients (the CLI) on the same port.
    let mut h1 = Rest::connect(&farm, Version::H1, Some(&admin));
    let url = farm.url();
    std::thread::scope(|s| {
        let grpc = s.spawn(|| {
            let mut seen = Vec::new();
            for _ in 0..5 {
                let out = common::cli(&url, &["jobs", "--json"]).output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                seen.push(v.as_array().unwrap().len());
            }
            seen
        });
        for i in 0..249 {
            let show = if i % 2 == 0 { "even" } else { "odd" };
            let spec = serde_json::json!({
                "name": format!("p{i:03}"), "show": show,
                "layers": [{"name": "a", "command": "true", "frames": "1"}]
            });
            let a = h1.post("/api/v1/jobs", &[], &spec.to_string());
            assert_eq!(a.status, 201, "{a:?}");
        }
        let seen = grpc.join().unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    });
    let cli = farm.json(&["jobs"]);
    assert_eq!(cli.as_array().map(Vec::len), Some(250), "{cli}");

    for (client, version) in [(&mut c, Version::H2), (&mut h1, Version::H1)] {
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let a = client.get(&format!("/api/v1/jobs?page_size=40&page_token={token}"));
            assert_eq!(a.status, 200, "{version:?} {a:?}");
            let jobs = a.body["jobs"].as_array().unwrap();
            assert!(jobs.len() <= 40);
            seen.extend(jobs.iter().map(|j| j["id"].as_i64().unwrap()));
            pages += 1;
            match a.body["next_page_token"].as_str() {
                Some(t) => token = t.to_string(),
                None => break,
            }
        }
        assert_eq!(pages, 7, "{version:?}");
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "{version:?}: a job came twice");
        let all: BTreeSet<i64> = cli
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        assert_eq!(unique, all, "{version:?}: pages missed a job");
    }
    // Filters: a show, a show and a name.
    let even = c.get("/api/v1/jobs?show=even&page_size=1000");
    assert_eq!(even.body["jobs"].as_array().unwrap().len(), 125, "{even:?}");
    let one = c.get("/api/v1/jobs?show=odd&name=p001");
    assert_eq!(one.body["jobs"][0]["name"], "p001", "{one:?}");
    // A job's frames, paged too.
    let id = first.body["id"].to_string();
    let f = c.get(&format!("/api/v1/jobs/{id}/frames?page_size=2"));
    assert_eq!(f.body["frames"].as_array().unwrap().len(), 2, "{f:?}");
    let t = f.body["next_page_token"].as_str().unwrap().to_string();
    let f = c.get(&format!(
        "/api/v1/jobs/{id}/frames?page_size=2&page_token={t}"
    ));
    assert_eq!(f.body["frames"].as_array().unwrap().len(), 1, "{f:?}");
    assert!(f.body["next_page_token"].is_null());
    let d = problem(
        &c.get(&format!("/api/v1/jobs/{id}/frames?page_token={t}x")),
        400,
    );
    assert!(d.starts_with("page_token: "), "{d}");
}

#[test]
fn the_openapi_document_is_valid_31_and_real_answers_match_it() {
    let farm = Farm::start_tls(1, 2);
    let admin = common::token_for(&farm.url()).unwrap();
    let mut c = Rest::connect(&farm, Version::H1, Some(&admin));
    let mut anon = Rest::connect(&farm, Version::H2, None);
    let doc = anon.get("/api/v1/openapi.json");
    assert_eq!(doc.status, 200, "{doc:?}");
    let s = Schema(doc.body);
    assert_eq!(s.0["openapi"], "3.1.0");
    assert!(s.0["info"]["title"].is_string() && s.0["info"]["version"].is_string());
    assert!(s.check_refs(&s.0) > 10, "a document with hardly a $ref");
    let paths = s.0["paths"].as_object().unwrap();
    // Every route the server serves is documented, and only those.
    let served = [
        ("get", "/api/v1/whoami"),
        ("get", "/api/v1/server"),
        ("get", "/api/v1/jobs"),
        ("post", "/api/v1/jobs"),
        ("get", "/api/v1/jobs/{job}"),
        ("get", "/api/v1/jobs/{job}/frames"),
        ("post", "/api/v1/jobs/{job}/{action}"),
        ("get", "/api/v1/hosts"),
        ("get", "/api/v1/jobs/{job}/layers"),
        ("post", "/api/v1/jobs/{job}/layers/{layer}/{action}"),
        ("get", "/api/v1/jobs/{job}/grep"),
        ("post", "/api/v1/jobs/{job}/priority"),
        ("post", "/api/v1/jobs/{job}/max-cores"),
        ("post", "/api/v1/jobs/{job}/unavoid"),
        ("get", "/api/v1/frames/{id}"),
        ("get", "/api/v1/frames/{id}/attempts"),
        ("get", "/api/v1/frames/{id}/log"),
        ("post", "/api/v1/frames/{id}/{action}"),
        ("get", "/api/v1/running"),
        ("get", "/api/v1/hosts/{name}"),
        ("delete", "/api/v1/hosts/{name}"),
        ("post", "/api/v1/hosts/{name}/{action}"),
        ("get", "/api/v1/history"),
        ("get", "/api/v1/facilities"),
        ("put", "/api/v1/facilities/{name}"),
        ("delete", "/api/v1/facilities/{name}"),
        ("get", "/api/v1/allocations"),
        ("put", "/api/v1/allocations/{name}"),
        ("delete", "/api/v1/allocations/{name}"),
        ("get", "/api/v1/shows"),
        ("put", "/api/v1/shows/{name}"),
        ("get", "/api/v1/subscriptions"),
        ("put", "/api/v1/subscriptions/{show}/{allocation}"),
        ("delete", "/api/v1/subscriptions/{show}/{allocation}"),
        ("get", "/api/v1/limits"),
        ("put", "/api/v1/limits/{name}"),
        ("delete", "/api/v1/limits/{name}"),
        ("get", "/api/v1/services"),
        ("put", "/api/v1/services/{name}"),
        ("delete", "/api/v1/services/{name}"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("post", "/api/v1/users/{name}/{action}"),
        ("put", "/api/v1/users/{name}/grants/{right}"),
        ("delete", "/api/v1/users/{name}/grants/{right}"),
        ("get", "/api/v1/tokens"),
        ("post", "/api/v1/tokens"),
        ("delete", "/api/v1/tokens/{id}"),
        ("get", "/api/v1/audit"),
        ("post", "/api/v1/login"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/autoscale"),
        ("get", "/api/v1/farm/history"),
        ("get", "/api/v1/frames/{id}/outputs/{n}/thumbnail"),
        ("get", "/api/v1/frames/{id}/usage"),
        ("get", "/api/v1/webhooks"),
        ("post", "/api/v1/webhooks"),
        ("delete", "/api/v1/webhooks/{id}"),
        ("get", "/api/v1/webhooks/deliveries"),
        ("get", "/api/v1/webhooks/{id}/deliveries"),
    ];
    for (m, p) in served {
        assert!(paths[p][m].is_object(), "{m} {p} is not in the document");
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, served.len(), "{paths:?}");
    // The events stream's messages carry Events (tests/events.rs reads them).
    let event = &s.0["components"]["schemas"]["Event"];
    assert!(event["properties"]["seq"].is_object(), "{event}");
    assert!(event["properties"]["kind"].is_object(), "{event}");

    // Real answers, each checked against its schema.
    let spec = "name: doc\nlayers:\n  - name: a\n    command: 'echo hi'\n    frames: 1-2\n  - name: b\n    command: 'exit 3'\n    frames: 1\n    retries: 0\n";
    let sub = c.post("/api/v1/jobs", &[("idempotency-key", "doc-1")], spec);
    s.check("post", "/api/v1/jobs", &sub);
    let id = sub.body["id"].to_string();
    farm.wait_status(&id, "FAILED", Duration::from_secs(30));
    for (route, path) in [
        ("/api/v1/whoami", "/api/v1/whoami".to_string()),
        ("/api/v1/server", "/api/v1/server".to_string()),
        ("/api/v1/jobs", "/api/v1/jobs?all=true".to_string()),
        ("/api/v1/jobs/{job}", format!("/api/v1/jobs/{id}")),
        (
            "/api/v1/jobs/{job}/frames",
            format!("/api/v1/jobs/{id}/frames"),
        ),
        ("/api/v1/hosts", "/api/v1/hosts".to_string()),
        ("/api/v1/autoscale", "/api/v1/autoscale".to_string()),
        ("/api/v1/farm/history", "/api/v1/farm/history".to_string()),
        (
            "/api/v1/farm/history",
            "/api/v1/farm/history?since=x".to_string(),
        ),
        ("/api/v1/running", "/api/v1/running?quiet_s=0".to_string()),
        ("/api/v1/running", "/api/v1/running?host=nope".to_string()),
        ("/api/v1/jobs", "/api/v1/jobs?state=nope".to_string()),
        ("/api/v1/jobs/{job}", "/api/v1/jobs/424242".to_string()),
    ] {
        let a = c.get(&path);
        s.check("get", route, &a);
    }
    let frames = c.get(&format!("/api/v1/jobs/{id}/frames"));
    assert!(frames.body["frames"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["outcome"] == "FAILED" && f["exit_status"] == 3));
    let a = c.post(
        &format!("/api/v1/jobs/{id}/retry"),
        &[],
        r#"{"targets": ["b"]}"#,
    );
    s.check("post", "/api/v1/jobs/{job}/{action}", &a);
    assert_eq!(a.body["frames"], 1, "{a:?}");
    let a = anon.get("/api/v1/whoami");
    s.check("get", "/api/v1/whoami", &a);

    // Signing in with a password, as the web UI does, with no token.
    let a = c.post(
        "/api/v1/users",
        &[],
        r#"{"name": "ana", "password": "correct horse"}"#,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let a = anon.post(
        "/api/v1/login",
        &[],
        r#"{"user": "ana", "password": "wrong horse"}"#,
    );
    s.check("post", "/api/v1/login", &a);
    assert!(
        problem(&a, 401).contains("wrong user name or password"),
        "{a:?}"
    );
    let a = anon.post("/api/v1/login", &[], r#"{"user": "ana"}"#);
    s.check("post", "/api/v1/login", &a);
    assert!(problem(&a, 400).contains("password"), "{a:?}");
    let a = anon.post(
        "/api/v1/login",
        &[],
        r#"{"user": "ana", "password": "correct horse"}"#,
    );
    s.check("post", "/api/v1/login", &a);
    assert_eq!(a.body["user"], "ana", "{a:?}");
    let session = a.body["token"].as_str().unwrap().to_string();
    let mut ana = Rest::connect(&farm, Version::H1, Some(&session));
    assert_eq!(ana.get("/api/v1/whoami").body["user"], "ana");

    // Webhooks: made (to a port where nothing listens, so its tries fail
    // and the log has rows), listed, their log read, deleted.
    let a = c.post(
        "/api/v1/webhooks",
        &[],
        r#"{"url": "http://127.0.0.1:9/kiln", "kinds": ["job.submitted"], "secret": "0123456789abcdef"}"#,
    );
    assert_eq!(a.status, 201, "{a:?}");
    s.check("post", "/api/v1/webhooks", &a);
    assert_eq!(a.body["secret"], "0123456789abcdef");
    let hook = a.body["webhook"]["id"].as_i64().unwrap();
    let a = c.post(
        "/api/v1/webhooks",
        &[],
        r#"{"url": "http://x/", "kinds": ["nope"]}"#,
    );
    s.check("post", "/api/v1/webhooks", &a);
    assert!(problem(&a, 400).contains("nope"), "{a:?}");
    c.post(
        "/api/v1/jobs",
        &[],
        &spec.replace("name: doc", "name: doc2"),
    );
    common::wait_until(Duration::from_secs(10), || {
        c.get(&format!("/api/v1/webhooks/{hook}/deliveries")).body["deliveries"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    });
    let a = c.get(&format!("/api/v1/webhooks/{hook}/deliveries"));
    s.check("get", "/api/v1/webhooks/{id}/deliveries", &a);
    assert_eq!(a.body["deliveries"][0]["outcome"], "retrying", "{a:?}");
    let a = c.get("/api/v1/webhooks/deliveries?failed=true&limit=5");
    s.check("get", "/api/v1/webhooks/deliveries", &a);
    let a = c.get("/api/v1/webhooks");
    s.check("get", "/api/v1/webhooks", &a);
    assert!(
        a.body["webhooks"][0]["failing"]["error"].is_string(),
        "{a:?}"
    );
    let a = c.delete(&format!("/api/v1/webhooks/{hook}"));
    s.check("delete", "/api/v1/webhooks/{id}", &a);
    let a = c.delete(&format!("/api/v1/webhooks/{hook}"));
    s.check("delete", "/api/v1/webhooks/{id}", &a);
    assert!(problem(&a, 404).contains("no webhook"), "{a:?}");
    let a = anon.get("/api/v1/webhooks");
    s.check("get", "/api/v1/webhooks", &a);
}

/// An HTTP/1.1 client that trickles a request head and never finishes
/// it is cut at `--preface-timeout`, as a silent HTTP/2 one is, while a
/// REST client and the CLI are served on the same port meanwhile.
#[test]
fn an_unfinished_http1_head_is_cut_at_the_preface_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let farm = Farm::start_tls_with(0, 1, &["--preface-timeout", "1s"]);
    let admin = common::token_for(&farm.url()).unwrap();
    let ca = std::fs::read(farm.path("data/ca.pem")).unwrap();
    let port = farm.port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (took, read) = rt.block_on(async move {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let start = std::time::Instant::now();
        // Well past 24 bytes, one header at a time, never the blank line.
        tls.write_all(b"GET /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        let mut read = Vec::new();
        let mut buf = [0u8; 256];
        for i in 0.. {
            tokio::select! {
                r = tls.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_millis(300)) => {
                    if start.elapsed() > Duration::from_secs(10) {
                        break;
                    }
                    let _ = tls.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await;
                }
            }
        }
        (start.elapsed(), read)
    });
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "an unfinished head held its connection {took:?}"
    );
    assert!(read.is_empty(), "{}", String::from_utf8_lossy(&read));
    // The port still serves both wires.
    let mut c = Rest::connect(&farm, Version::H1, Some(&admin));
    assert_eq!(c.get("/api/v1/jobs").status, 200);
    assert!(farm.try_kiln(&["jobs"]).status.success());
}
