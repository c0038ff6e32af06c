//! The REST API's resources beyond jobs, end to end with the real binary
//! over TLS and a real worker: a frame that fails, is retried through
//! REST and shows two attempts, its log read in slices and searched,
//! history exported as the CLI writes it, hosts, the farm's structure,
//! users, grants and tokens; frames' outputs with their previews and bad
//! frames flagged (or failed and retried); every answer checked against
//! the OpenAPI document, refusals with the CLI's texts changing nothing.

mod common;
mod rest_client;

use common::Farm;
use rest_client::{problem, Rest, Schema, Version};
use serde_json::{json, Value};
use std::time::Duration;

fn schema(farm: &Farm) -> Schema {
    let mut anon = Rest::connect(farm, Version::H2, None);
    let doc = anon.get("/api/v1/openapi.json");
    assert_eq!(doc.status, 200, "{doc:?}");
    Schema(doc.body)
}

/// GETs `path`, checks the answer against `route`'s schema, returns it.
fn get(c: &mut Rest, s: &Schema, route: &str, path: &str) -> Value {
    let a = c.get(path);
    s.check("get", route, &a);
    assert_eq!(a.status, 200, "{path}: {a:?}");
    a.body
}

/// Sends `method path body`, checks the answer against `route`'s schema.
fn send(
    c: &mut Rest,
    s: &Schema,
    method: &str,
    route: &str,
    path: &str,
    body: &str,
) -> rest_client::Answer {
    let a = c.call(&method.to_uppercase(), path, &[], body);
    s.check(method, route, &a);
    a
}

#[test]
fn a_frame_fails_is_retried_through_rest_and_its_attempts_logs_and_history_show_it() {
    let farm = Farm::start_tls(1, 2);
    let admin = common::token_for(&farm.url()).unwrap();
    let s = schema(&farm);
    let mut c = Rest::connect(&farm, Version::H1, Some(&admin));
    // The first run writes a long log and fails; the second succeeds.
    let mark = farm.path("ran-once");
    let cmd = format!(
        "if [ -e {m} ]; then echo second-run; else touch {m}; echo first-run-é; \
         for i in $(seq 1 300); do echo filler-$i; done; exit 3; fi",
        m = mark.display()
    );
    let spec = json!({"name": "twice", "show": "demo",
        "layers": [{"name": "a", "command": cmd, "frames": "1", "retries": 0}]});
    let sub = c.post("/api/v1/jobs", &[], &spec.to_string());
    assert_eq!(sub.status, 201, "{sub:?}");
    let job = sub.body["id"].to_string();
    farm.wait_status(&job, "FAILED", Duration::from_secs(30));

    let layers = get(
        &mut c,
        &s,
        "/api/v1/jobs/{job}/layers",
        &format!("/api/v1/jobs/{job}/layers"),
    );
    assert_eq!(layers["layers"][0]["name"], "a");
    assert_eq!(layers["layers"][0]["counts"]["dead"], 1, "{layers}");
    let frames = get(
        &mut c,
        &s,
        "/api/v1/jobs/{job}/frames",
        &format!("/api/v1/jobs/{job}/frames"),
    );
    let id = frames["frames"][0]["id"].as_i64().unwrap();
    let fr = get(
        &mut c,
        &s,
        "/api/v1/frames/{id}",
        &format!("/api/v1/frames/{id}"),
    );
    assert_eq!(fr["job_id"].to_string(), job);
    assert_eq!(fr["job"], "twice");
    assert_eq!(fr["frame"]["state"], "DEAD", "{fr}");
    assert_eq!(fr["frame"]["exit_status"], 3, "{fr}");

    // The log, 100 bytes at a time, offsets passed back: the whole log,
    // as the CLI prints it, with no byte twice and none missing.
    let cli_log = farm.kiln(&["log", &job, "a/1"]);
    let mut log = String::new();
    let mut offset = 0u64;
    let mut reads = 0;
    loop {
        let p = get(
            &mut c,
            &s,
            "/api/v1/frames/{id}/log",
            &format!("/api/v1/frames/{id}/log?offset={offset}&max_bytes=100"),
        );
        assert_eq!(p["attempt"], 1, "{p}");
        log.push_str(p["data"].as_str().unwrap());
        offset = p["next_offset"].as_u64().unwrap();
        reads += 1;
        if p["complete"] == true {
            break;
        }
        assert!(reads < 1000, "the log never completed");
    }
    assert!(reads > 10, "{reads} reads of a {offset}-byte log");
    assert_eq!(log, cli_log);
    assert!(
        log.contains("\nfirst-run-é\n") && log.contains("filler-300\n"),
        "{log}"
    );
    // Searched: one frame's log, and the job's.
    let g = get(
        &mut c,
        &s,
        "/api/v1/frames/{id}/log",
        &format!("/api/v1/frames/{id}/log?grep=filler-2%5B0-9%5D%24"),
    );
    let lines: Vec<&str> = g["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "{g}");
    let line = log.lines().position(|l| l == "filler-20").unwrap() + 1;
    assert_eq!(g["lines"][0]["line_number"], line, "{g}");
    let g = get(
        &mut c,
        &s,
        "/api/v1/jobs/{job}/grep",
        &format!("/api/v1/jobs/{job}/grep?regex=%5EFIRST-RUN&i=true"),
    );
    assert_eq!(g["lines"][0]["frame"], "a/1", "{g}");
    assert_eq!(g["lines"].as_array().unwrap().len(), 1, "{g}");
    let d = problem(&c.get(&format!("/api/v1/jobs/{job}/grep")), 400);
    assert!(d.starts_with("regex: "), "{d}");
    let d = problem(&c.get(&format!("/api/v1/frames/{id}/log?offset=x")), 400);
    assert!(d.starts_with("offset: "), "{d}");

    // An artist may read another's frame but not its log, nor retry it:
    // the CLI's texts, and the frame stays DEAD.
    let bob = farm.user("bob", &["artist"]);
    let mut b = Rest::connect(&farm, Version::H2, Some(&bob));
    let a = b.get(&format!("/api/v1/frames/{id}"));
    s.check("get", "/api/v1/frames/{id}", &a);
    assert_eq!(a.status, 200, "{a:?}");
    let a = b.get(&format!("/api/v1/frames/{id}/log"));
    s.check("get", "/api/v1/frames/{id}/log", &a);
    let detail = problem(&a, 403);
    let cli = farm.kiln_as(Some(&bob), &["log", &job, "a/1"]);
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains(&detail),
        "{detail}"
    );
    let a = b.post(&format!("/api/v1/frames/{id}/retry"), &[], "");
    s.check("post", "/api/v1/frames/{id}/{action}", &a);
    let detail = problem(&a, 403);
    let cli = farm.kiln_as(Some(&bob), &["retry", &job, &id.to_string()]);
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains(&detail),
        "{detail}"
    );
    assert_eq!(
        c.get(&format!("/api/v1/frames/{id}")).body["frame"]["state"],
        "DEAD"
    );

    // A viewer of another show may not even read it, nor its attempts.
    let carol = farm.user("carol", &["viewer@other"]);
    let mut v = Rest::connect(&farm, Version::H1, Some(&carol));
    for path in [
        format!("/api/v1/frames/{id}"),
        format!("/api/v1/frames/{id}/attempts"),
    ] {
        let detail = problem(&v.get(&path), 403);
        assert!(
            detail.starts_with("carol (viewer of show other) may not read job"),
            "{detail}"
        );
    }

    // Retried through REST: the CLI's line, then it runs again and succeeds.
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/frames/{id}/{action}",
        &format!("/api/v1/frames/{id}/retry"),
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["frames"], 1, "{a:?}");
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .starts_with("requeued 1 frame(s)"),
        "{a:?}"
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    let at = get(
        &mut c,
        &s,
        "/api/v1/frames/{id}/attempts",
        &format!("/api/v1/frames/{id}/attempts"),
    );
    let at = at["attempts"].as_array().unwrap().clone();
    assert_eq!(at.len(), 2, "{at:?}");
    assert_eq!(
        (
            at[0]["attempt"].clone(),
            at[0]["outcome"].clone(),
            at[0]["exit_status"].clone()
        ),
        (json!(1), json!("FAILED"), json!(3))
    );
    assert_eq!(
        (at[1]["attempt"].clone(), at[1]["outcome"].clone()),
        (json!(2), json!("SUCCEEDED"))
    );
    for a in &at {
        assert_eq!(a["host"], "w0");
        assert!(a["ended_at"].as_i64().unwrap() >= a["started_at"].as_i64().unwrap());
    }
    // Each attempt's log stays readable.
    let p = get(
        &mut c,
        &s,
        "/api/v1/frames/{id}/log",
        &format!("/api/v1/frames/{id}/log"),
    );
    assert_eq!(p["attempt"], 2, "{p}");
    assert!(
        p["data"].as_str().unwrap().contains("===\nsecond-run\n"),
        "{p}"
    );
    // A character the slice would cut in two waits for the next read.
    let e = log.find("é\n").unwrap();
    let p = get(
        &mut c,
        &s,
        "/api/v1/frames/{id}/log",
        &format!("/api/v1/frames/{id}/log?attempt=1&offset={e}&max_bytes=1"),
    );
    assert_eq!(
        (p["data"].clone(), p["next_offset"].clone()),
        (json!(""), json!(e)),
        "{p}"
    );
    let p = get(
        &mut c,
        &s,
        "/api/v1/frames/{id}/log",
        &format!("/api/v1/frames/{id}/log?attempt=1&offset={e}&max_bytes=3"),
    );
    assert_eq!(
        (p["data"].clone(), p["next_offset"].clone()),
        (json!("é\n"), json!(e + 3)),
        "{p}"
    );
    let p = c.get(&format!("/api/v1/frames/{id}/log?attempt=9"));
    s.check("get", "/api/v1/frames/{id}/log", &p);
    problem(&p, 404);
    let p = c.get("/api/v1/frames/987654");
    s.check("get", "/api/v1/frames/{id}", &p);
    problem(&p, 404);

    // History: JSON pages, and CSV and JSON lines as `kiln history` writes them.
    let h = get(
        &mut c,
        &s,
        "/api/v1/history",
        &format!("/api/v1/history?job={job}&page_size=1"),
    );
    assert_eq!(h["rows"].as_array().unwrap().len(), 1, "{h}");
    assert_eq!(h["rows"][0]["outcome"], "FAILED");
    let t = h["next_page_token"].as_str().unwrap().to_string();
    let h = get(
        &mut c,
        &s,
        "/api/v1/history",
        &format!("/api/v1/history?job={job}&page_size=1&page_token={t}"),
    );
    assert_eq!(h["rows"][0]["outcome"], "SUCCEEDED", "{h}");
    assert!(h["next_page_token"].is_null(), "{h}");
    // Times as the CLI takes them: a duration ago, a UTC date.
    let recent = get(
        &mut c,
        &s,
        "/api/v1/history",
        &format!("/api/v1/history?job={job}&since=1h"),
    );
    assert_eq!(recent["rows"].as_array().unwrap().len(), 2, "{recent}");
    let old = get(
        &mut c,
        &s,
        "/api/v1/history",
        &format!("/api/v1/history?job={job}&until=2001-01-01"),
    );
    assert_eq!(old["rows"], json!([]), "{old}");
    let d = problem(&c.get("/api/v1/history?since=lately"), 400);
    assert!(d.starts_with("since: "), "{d}");
    let d = problem(&c.get("/api/v1/history?page_token=j12"), 400);
    assert!(d.starts_with("page_token: "), "{d}");
    let d = problem(&c.get("/api/v1/history?format=xlsx"), 400);
    assert!(d.starts_with("format: "), "{d}");
    // page_size=1: the export streamed a store page at a time, whole.
    for (format, size) in [("csv", 5000), ("jsonl", 5000), ("csv", 1), ("jsonl", 1)] {
        let (status, ct, text) = c.text(
            "GET",
            &format!("/api/v1/history?job={job}&format={format}&page_size={size}"),
            "",
        );
        assert_eq!(status, 200, "{text}");
        let documented = &s.0["paths"]["/api/v1/history"]["get"]["responses"]["200"]["content"];
        let bare = ct.split(';').next().unwrap();
        assert!(documented[bare].is_object(), "{ct} is not documented");
        let cli = farm.kiln(&["history", "--job", &job, "--format", format]);
        assert_eq!(text, cli, "REST and the CLI export {format} differently");
        assert_eq!(
            text.lines().count(),
            if format == "csv" { 3 } else { 2 },
            "{text}"
        );
    }

    // The host: read, locked and unlocked with the CLI's lines.
    let h = get(&mut c, &s, "/api/v1/hosts/{name}", "/api/v1/hosts/w0");
    assert_eq!(
        (h["name"].clone(), h["lock"].clone()),
        (json!("w0"), json!("OPEN"))
    );
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/hosts/{name}/{action}",
        "/api/v1/hosts/w0/lock",
        "",
    );
    assert_eq!(a.body["message"], "host w0 is locked", "{a:?}");
    assert_eq!(c.get("/api/v1/hosts/w0").body["lock"], "LOCKED");
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/hosts/{name}/{action}",
        "/api/v1/hosts/w0/tag",
        r#"{"tags": ["fast"]}"#,
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        c.get("/api/v1/hosts/w0").body["manual_tags"],
        json!(["fast"])
    );
    let d = problem(
        &c.post("/api/v1/hosts/w0/lock", &[], r#"{"tags": ["x"]}"#),
        400,
    );
    assert!(d.starts_with("tags: "), "{d}");
    let d = problem(&c.get("/api/v1/hosts/w9"), 404);
    assert!(d.contains("no host \"w9\""), "{d}");
    c.post("/api/v1/hosts/w0/unlock", &[], "");
    assert_eq!(c.get("/api/v1/hosts/w0").body["lock"], "OPEN");
    for (action, state) in [("repair", "REPAIR"), ("fixed", "UP")] {
        let a = send(
            &mut c,
            &s,
            "post",
            "/api/v1/hosts/{name}/{action}",
            &format!("/api/v1/hosts/w0/{action}"),
            "",
        );
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(c.get("/api/v1/hosts/w0").body["state"], state);
    }
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/hosts/{name}/{action}",
        "/api/v1/hosts/w0/untag",
        r#"{"tags": ["fast"]}"#,
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(c.get("/api/v1/hosts/w0").body["manual_tags"], json!([]));
    let d = problem(&c.post("/api/v1/hosts/w0/move", &[], ""), 400);
    assert!(d.starts_with("allocation: "), "{d}");
    let a = c.post(
        "/api/v1/hosts/w0/move",
        &[],
        r#"{"allocation": "local.nowhere"}"#,
    );
    s.check("post", "/api/v1/hosts/{name}/{action}", &a);
    assert!(a.status == 404 || a.status == 400, "{a:?}");
    assert_eq!(
        c.get("/api/v1/hosts/w0").body["allocation"],
        "local.general"
    );
    let a = c.get("/api/v1/hosts/nosuch");
    s.check("get", "/api/v1/hosts/{name}", &a);
    problem(&a, 404);
}

#[test]
fn structure_identity_and_job_changes_over_rest_with_refusals_that_change_nothing() {
    let farm = Farm::start_tls(0, 1);
    let admin = common::token_for(&farm.url()).unwrap();
    let bob = farm.user("bob", &["artist"]);
    let s = schema(&farm);
    let mut c = Rest::connect(&farm, Version::H2, Some(&admin));
    let mut b = Rest::connect(&farm, Version::H1, Some(&bob));

    // An artist may not set a limit: 403 with the CLI's text, and no limit.
    let a = send(
        &mut b,
        &s,
        "put",
        "/api/v1/limits/{name}",
        "/api/v1/limits/lic",
        r#"{"max": 2}"#,
    );
    let detail = problem(&a, 403);
    let cli = farm.kiln_as(Some(&bob), &["limit", "set", "lic", "--max", "2"]);
    let cli = String::from_utf8_lossy(&cli.stderr);
    assert!(
        cli.contains(&detail),
        "REST said {detail:?}, the CLI {cli:?}"
    );
    let l = get(&mut c, &s, "/api/v1/limits", "/api/v1/limits");
    assert_eq!(l["limits"], json!([]), "a refused change changed the farm");
    // An admin may.
    let a = send(
        &mut c,
        &s,
        "put",
        "/api/v1/limits/{name}",
        "/api/v1/limits/lic",
        r#"{"max": 2}"#,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let l = get(&mut c, &s, "/api/v1/limits", "/api/v1/limits");
    assert_eq!(
        (
            l["limits"][0]["name"].clone(),
            l["limits"][0]["max"].clone()
        ),
        (json!("lic"), json!(2))
    );
    let d = problem(&c.put("/api/v1/limits/lic", r#"{"max": "two"}"#), 400);
    assert!(d.starts_with("max: "), "{d}");

    // The structure, changed and read back, each answer checked.
    for (method, route, path, body) in [
        (
            "put",
            "/api/v1/facilities/{name}",
            "/api/v1/facilities/paris",
            "",
        ),
        (
            "put",
            "/api/v1/allocations/{name}",
            "/api/v1/allocations/paris.gpu",
            r#"{"tags": ["gpu"]}"#,
        ),
        (
            "put",
            "/api/v1/shows/{name}",
            "/api/v1/shows/film",
            r#"{"default_priority": 70, "default_max_cores": 800}"#,
        ),
        (
            "put",
            "/api/v1/subscriptions/{show}/{allocation}",
            "/api/v1/subscriptions/film/paris.gpu",
            r#"{"size": 400, "burst": 1200}"#,
        ),
        (
            "put",
            "/api/v1/services/{name}",
            "/api/v1/services/nuke?show=film",
            r#"{"cores": "2+", "memory_kb": 1048576, "tags": ["gpu|cuda"]}"#,
        ),
    ] {
        let a = send(&mut c, &s, method, route, path, body);
        assert_eq!(a.status, 200, "{path}: {a:?}");
        assert!(!a.body["message"].as_str().unwrap().is_empty());
    }
    let f = get(&mut c, &s, "/api/v1/facilities", "/api/v1/facilities");
    assert!(
        f["facilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "paris"),
        "{f}"
    );
    let al = get(&mut c, &s, "/api/v1/allocations", "/api/v1/allocations");
    let gpu = al["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "paris.gpu")
        .unwrap()
        .clone();
    assert_eq!(gpu["tags"], json!(["gpu"]));
    let sh = get(&mut c, &s, "/api/v1/shows", "/api/v1/shows");
    let film = sh["shows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "film")
        .unwrap()
        .clone();
    assert_eq!(
        (
            film["default_priority"].clone(),
            film["default_max_cores"].clone()
        ),
        (json!(70), json!(800))
    );
    // null lifts the cap; an absent field stays as it was.
    send(
        &mut c,
        &s,
        "put",
        "/api/v1/shows/{name}",
        "/api/v1/shows/film",
        r#"{"default_max_cores": null}"#,
    );
    let sh = get(&mut c, &s, "/api/v1/shows", "/api/v1/shows");
    let film = sh["shows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "film")
        .unwrap()
        .clone();
    assert_eq!(
        (
            film["default_priority"].clone(),
            film["default_max_cores"].clone()
        ),
        (json!(70), Value::Null)
    );
    let sub = get(&mut c, &s, "/api/v1/subscriptions", "/api/v1/subscriptions");
    let one = sub["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["show"] == "film")
        .unwrap()
        .clone();
    assert_eq!(
        (one["size"].clone(), one["burst"].clone()),
        (json!(400), json!(1200))
    );
    let sv = get(&mut c, &s, "/api/v1/services", "/api/v1/services");
    let nuke = sv["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nuke")
        .unwrap()
        .clone();
    assert_eq!(
        (
            nuke["show"].clone(),
            nuke["cores"].clone(),
            nuke["tags"].clone()
        ),
        (json!("film"), json!("2+"), json!(["gpu|cuda"]))
    );
    let d = problem(&c.put("/api/v1/services/nuke", r#"{"cores": "lots"}"#), 400);
    assert!(d.starts_with("cores: "), "{d}");
    for (route, path) in [
        ("/api/v1/services/{name}", "/api/v1/services/nuke?show=film"),
        (
            "/api/v1/subscriptions/{show}/{allocation}",
            "/api/v1/subscriptions/film/paris.gpu",
        ),
        (
            "/api/v1/allocations/{name}",
            "/api/v1/allocations/paris.gpu",
        ),
        ("/api/v1/facilities/{name}", "/api/v1/facilities/paris"),
        ("/api/v1/limits/{name}", "/api/v1/limits/lic"),
    ] {
        let a = send(&mut c, &s, "delete", route, path, "");
        assert_eq!(a.status, 200, "{path}: {a:?}");
    }
    assert_eq!(
        get(&mut c, &s, "/api/v1/limits", "/api/v1/limits")["limits"],
        json!([])
    );
    assert_eq!(
        get(&mut c, &s, "/api/v1/services", "/api/v1/services")["services"],
        json!([])
    );

    // A pipeline's service account: a user, a grant and a token, all over
    // REST; the token works for the next call, and not once revoked.
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/users",
        "/api/v1/users",
        r#"{"name": "pipeline"}"#,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let a = send(
        &mut c,
        &s,
        "put",
        "/api/v1/users/{name}/grants/{right}",
        "/api/v1/users/pipeline/grants/artist?show=film",
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/tokens",
        "/api/v1/tokens",
        r#"{"name": "ci", "user": "pipeline", "expires_in_s": 3600}"#,
    );
    assert_eq!(a.status, 201, "{a:?}");
    let token = a.body["token"].as_str().unwrap().to_string();
    let token_id = a.body["token_id"].as_str().unwrap().to_string();
    let mut p = Rest::connect(&farm, Version::H1, Some(&token));
    let w = p.get("/api/v1/whoami");
    assert_eq!(w.body["user"], "pipeline", "{w:?}");
    let sub = p.post(
        "/api/v1/jobs",
        &[],
        "name: ci-job\nshow: film\nlayers:\n  - name: a\n    command: 'true'\n    frames: 1-2\n",
    );
    assert_eq!(sub.status, 201, "{sub:?}");
    let job = sub.body["id"].to_string();
    let users = get(&mut c, &s, "/api/v1/users", "/api/v1/users");
    let pl = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "pipeline")
        .unwrap()
        .clone();
    assert_eq!(
        pl["grants"],
        json!([{"right": "artist", "show": "film"}]),
        "{pl}"
    );
    let t = get(&mut c, &s, "/api/v1/tokens", "/api/v1/tokens?all=true");
    assert!(
        t["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == token_id.as_str() && t["user"] == "pipeline"),
        "{t}"
    );
    assert!(!t.to_string().contains(&token), "a listing showed a secret");
    // Bob may not list users or read the audit trail.
    let a = b.get("/api/v1/users");
    s.check("get", "/api/v1/users", &a);
    problem(&a, 403);
    let a = b.get("/api/v1/audit");
    s.check("get", "/api/v1/audit", &a);
    problem(&a, 403);

    // Job changes: bob may not reprioritise another's job; an admin may.
    let a = send(
        &mut b,
        &s,
        "post",
        "/api/v1/jobs/{job}/priority",
        &format!("/api/v1/jobs/{job}/priority"),
        r#"{"priority": 900}"#,
    );
    let detail = problem(&a, 403);
    let cli = farm.kiln_as(Some(&bob), &["job", "set", &job, "--priority", "900"]);
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains(&detail),
        "{detail}"
    );
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/jobs/{job}/priority",
        &format!("/api/v1/jobs/{job}/priority"),
        r#"{"priority": 900}"#,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/jobs/{job}/max-cores",
        &format!("/api/v1/jobs/{job}/max-cores"),
        r#"{"max_cores": 250}"#,
    );
    assert_eq!(a.status, 200, "{a:?}");
    let d = problem(
        &c.post(&format!("/api/v1/jobs/{job}/max-cores"), &[], "{}"),
        400,
    );
    assert!(d.contains("max_cores"), "{d}");
    let j = c.get(&format!("/api/v1/jobs/{job}"));
    assert_eq!(
        (
            j.body["job"]["priority"].clone(),
            j.body["max_cores"].clone()
        ),
        (json!(900), json!(250)),
        "{j:?}"
    );
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/jobs/{job}/unavoid",
        &format!("/api/v1/jobs/{job}/unavoid"),
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    // A layer paused and resumed by its own route.
    let a = send(
        &mut p,
        &s,
        "post",
        "/api/v1/jobs/{job}/layers/{layer}/{action}",
        &format!("/api/v1/jobs/{job}/layers/a/pause"),
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    let l = get(
        &mut c,
        &s,
        "/api/v1/jobs/{job}/layers",
        &format!("/api/v1/jobs/{job}/layers"),
    );
    assert_eq!(l["layers"][0]["paused"], true, "{l}");
    let a = send(
        &mut p,
        &s,
        "post",
        "/api/v1/jobs/{job}/layers/{layer}/{action}",
        &format!("/api/v1/jobs/{job}/layers/a/kill"),
        r#"{"frames": "2"}"#,
    );
    assert_eq!(a.body["frames"], 1, "{a:?}");
    let a = p.post(&format!("/api/v1/jobs/{job}/layers/zz/pause"), &[], "");
    s.check("post", "/api/v1/jobs/{job}/layers/{layer}/{action}", &a);
    problem(&a, 404);
    // Jobs submitted since a time.
    let all = get(&mut c, &s, "/api/v1/jobs", "/api/v1/jobs");
    let at = all["jobs"][0]["submitted_at"].as_i64().unwrap();
    let since = get(
        &mut c,
        &s,
        "/api/v1/jobs",
        &format!("/api/v1/jobs?since={}", at + 1),
    );
    assert_eq!(since["jobs"], json!([]), "{since}");
    assert_eq!(
        get(
            &mut c,
            &s,
            "/api/v1/jobs",
            &format!("/api/v1/jobs?since={at}")
        )["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A disabled account's token stops working until it is enabled; a
    // revoked grant leaves it none.
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/users/{name}/{action}",
        "/api/v1/users/pipeline/disable",
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    problem(&p.get("/api/v1/whoami"), 401);
    send(
        &mut c,
        &s,
        "post",
        "/api/v1/users/{name}/{action}",
        "/api/v1/users/pipeline/enable",
        "",
    );
    assert_eq!(p.get("/api/v1/whoami").status, 200);
    let a = send(
        &mut c,
        &s,
        "delete",
        "/api/v1/users/{name}/grants/{right}",
        "/api/v1/users/pipeline/grants/artist?show=film",
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(p.get("/api/v1/whoami").body["grants"], json!([]));
    let d = problem(
        &c.call("PUT", "/api/v1/users/pipeline/grants/boss", &[], ""),
        400,
    );
    assert!(d.starts_with("right: "), "{d}");
    // Revoked: the token no longer works, and the trail says so.
    let a = send(
        &mut c,
        &s,
        "delete",
        "/api/v1/tokens/{id}",
        &format!("/api/v1/tokens/{token_id}"),
        "",
    );
    assert_eq!(a.status, 200, "{a:?}");
    problem(&p.get("/api/v1/whoami"), 401);
    let au = get(&mut c, &s, "/api/v1/audit", "/api/v1/audit?who=bob");
    let recs = au["records"].as_array().unwrap();
    assert!(recs.iter().all(|r| r["who"] == "bob"), "{au}");
    assert!(
        recs.iter()
            .any(|r| r["outcome"].as_str().unwrap().starts_with("denied")
                && r["target"].as_str().unwrap().contains("lic")),
        "{au}"
    );
}

#[test]
fn outputs_are_previewed_bad_frames_flagged_or_retried_and_both_survive_a_restart() {
    let mut farm = Farm::start_tls(1, 4);
    let admin = common::token_for(&farm.url()).unwrap();
    let s = schema(&farm);
    let mut c = Rest::connect(&farm, Version::H1, Some(&admin));
    // What the "renderer" copies into place: grey frames, one all black.
    let src = farm.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for n in 1..=4 {
        let v = if n == 3 { 0 } else { 110 };
        image::RgbImage::from_pixel(640, 360, image::Rgb([v, v, v]))
            .save(src.join(format!("img.{n:04}.png")))
            .unwrap();
    }
    let shot = farm.path("shot");
    std::fs::create_dir_all(&shot).unwrap();
    // "strict" writes a black frame on its first run, a good one after.
    let mark = farm.path("strict-ran");
    let strict = format!(
        "mkdir -p st; if [ -e {m} ]; then cp {s}/img.0001.png st/a.png; \
         else touch {m}; cp {s}/img.0003.png st/a.png; fi",
        m = mark.display(),
        s = src.display()
    );
    let spec = json!({"name": "previews", "show": "demo", "cwd": shot.display().to_string(),
        "layers": [
            {"name": "beauty", "frames": "1-4",
             "command": format!("mkdir -p out && cp {}/img.#ZFRAME#.png out/", src.display()),
             "outputs": ["out/img.#ZFRAME#.png", "out/missing.#FRAME#.exr"]},
            {"name": "strict", "frames": "1", "retries": 2, "command": strict,
             "outputs": ["st/a.png"], "bad_outputs": "fail"}]});
    let sub = c.post("/api/v1/jobs", &[], &spec.to_string());
    assert_eq!(sub.status, 201, "{sub:?}");
    let job = sub.body["id"].to_string();
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));

    let check = |c: &mut Rest| {
        let frames = get(
            c,
            &s,
            "/api/v1/jobs/{job}/frames",
            &format!("/api/v1/jobs/{job}/frames"),
        );
        let frames = frames["frames"].as_array().unwrap().clone();
        let beauty: Vec<&Value> = frames.iter().filter(|f| f["layer"] == "beauty").collect();
        assert_eq!(beauty.len(), 4);
        for f in &beauty {
            let n = f["number"].as_i64().unwrap();
            let outs = f["outputs"].as_array().expect("outputs listed");
            assert_eq!(outs[0]["path"], format!("out/img.{n:04}.png"), "{f}");
            assert_eq!(outs[1]["state"], "missing", "{f}");
            assert_eq!(outs[0]["thumbnail"], true, "a black one too: {f}");
            // The second output is missing in every frame: each is flagged;
            // frame 3 for its black image first (the first problem found).
            let flag = f["flag"].as_str().unwrap_or_default();
            if n == 3 {
                assert_eq!(outs[0]["state"], "black", "{f}");
                assert_eq!(flag, "out/img.0003.png is all black", "{f}");
            } else {
                assert_eq!(outs[0]["state"], "ok", "{f}");
                assert_eq!(
                    (outs[0]["width"].clone(), outs[0]["height"].clone()),
                    (json!(640), json!(360))
                );
                let b = outs[0]["brightness"].as_f64().unwrap();
                assert!((b - 110.0 / 255.0).abs() < 0.02, "{b}");
                assert_eq!(flag, format!("out/missing.{n}.exr is missing"), "{f}");
            }
            assert_eq!(f["state"], "SUCCEEDED", "flagged, not failed: {f}");
        }
        // "strict" failed its black first attempt and was retried.
        let st = frames.iter().find(|f| f["layer"] == "strict").unwrap();
        assert_eq!(st["state"], "SUCCEEDED", "{st}");
        assert_eq!(st["attempts"], 2, "{st}");
        assert_eq!(st["outputs"][0]["state"], "ok", "{st}");
        let id = st["id"].as_i64().unwrap();
        let attempts = get(
            c,
            &s,
            "/api/v1/frames/{id}/attempts",
            &format!("/api/v1/frames/{id}/attempts"),
        );
        let first = &attempts["attempts"][0];
        assert_eq!(first["outcome"], "FAILED", "{attempts}");
        assert_eq!(
            first["reason"], "bad output: st/a.png is all black",
            "{attempts}"
        );
        // Previews: a JPEG of each frame's output, the attempt's own
        // cached for good; none for what has none.
        let f1 = beauty[0]["id"].as_i64().unwrap();
        let (status, ctype, jpeg) = c.bytes(&format!(
            "/api/v1/frames/{f1}/outputs/0/thumbnail?attempt=1"
        ));
        assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
        let img = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (256, 144));
        let a = c.get(&format!("/api/v1/frames/{f1}/outputs/1/thumbnail"));
        s.check("get", "/api/v1/frames/{id}/outputs/{n}/thumbnail", &a);
        assert!(problem(&a, 404).contains("no preview of output 1"), "{a:?}");
        let a = c.get(&format!("/api/v1/frames/{f1}/outputs/x/thumbnail"));
        assert!(
            problem(&a, 400).contains("n: \"x\" is not an output number"),
            "{a:?}"
        );
        // The strict frame's first (black) attempt keeps its own preview.
        let (status, _, _) = c.bytes(&format!(
            "/api/v1/frames/{id}/outputs/0/thumbnail?attempt=1"
        ));
        assert_eq!(status, 200);
    };
    check(&mut c);
    // Durable: after a SIGKILL the server reads it all back.
    farm.kill_server();
    farm.start_server();
    let mut c = Rest::connect(&farm, Version::H2, Some(&admin));
    check(&mut c);
    // A bad setting is refused at its field, and nothing is made.
    let bad = json!({"name": "bad", "layers": [{"name": "a", "command": "true", "frames": "1",
        "outputs": ["a.png"], "bad_outputs": "retry"}]});
    let a = send(
        &mut c,
        &s,
        "post",
        "/api/v1/jobs",
        "/api/v1/jobs",
        &bad.to_string(),
    );
    let p = problem(&a, 400);
    assert!(
        p.contains("layers[0].bad_outputs") && p.contains("\"fail\""),
        "{p}"
    );
}

#[test]
fn a_frames_memory_and_cpu_over_time_live_and_after_it_ended() {
    // Heartbeats every half second: a few while the frame runs.
    let mut farm = Farm::start_tls_down(1, 2, "3s", &[]);
    let admin = common::token_for(&farm.url()).unwrap();
    let s = schema(&farm);
    let mut c = Rest::connect(&farm, Version::H1, Some(&admin));
    // About 40 MB held by the shell for three seconds (made with some CPU).
    let cmd = "x=$(head -c 40000000 /dev/zero | tr '\\0' a); sleep 3; echo ${#x}";
    let spec = json!({"name": "hungry", "layers": [{"name": "a", "command": cmd, "frames": "1"}]});
    let sub = c.post("/api/v1/jobs", &[], &spec.to_string());
    assert_eq!(sub.status, 201, "{sub:?}");
    let job = sub.body["id"].to_string();
    farm.wait_status(&job, "RUNNING", Duration::from_secs(20));
    let id = farm.frames(&job)[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/frames/{id}/usage");
    // Live, from the heartbeats.
    let start = std::time::Instant::now();
    let live = loop {
        let u = get(&mut c, &s, "/api/v1/frames/{id}/usage", &path);
        if u["samples"].as_array().unwrap().len() >= 2 {
            break u;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no live samples: {u}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (live["running"].clone(), live["attempt"].clone()),
        (json!(true), json!(1))
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    // Ended: the worker's own samples, each second, kept beside the log;
    // read again after the server is SIGKILLed and back.
    for restart in [false, true] {
        if restart {
            farm.kill_server();
            farm.start_server();
            c = Rest::connect(&farm, Version::H1, Some(&admin));
        }
        let u = get(&mut c, &s, "/api/v1/frames/{id}/usage", &path);
        assert_eq!(u["running"], false, "{u}");
        let samples = u["samples"].as_array().unwrap();
        assert!(samples.len() >= 3, "{u}");
        let t: Vec<i64> = samples.iter().map(|p| p["t"].as_i64().unwrap()).collect();
        assert!(t.windows(2).all(|w| w[0] < w[1]), "{u}");
        let cpu: Vec<u64> = samples
            .iter()
            .map(|p| p["cpu_ms"].as_u64().unwrap())
            .collect();
        assert!(
            cpu.windows(2).all(|w| w[0] <= w[1]) && cpu[cpu.len() - 1] >= 50,
            "{u}"
        );
        let peak = samples
            .iter()
            .map(|p| p["rss_kb"].as_u64().unwrap())
            .max()
            .unwrap();
        assert!(peak >= 30 << 10, "peak {peak} KiB: {u}");
    }
    // The first attempt by number, and one that never was.
    let u = get(
        &mut c,
        &s,
        "/api/v1/frames/{id}/usage",
        &format!("{path}?attempt=1"),
    );
    assert_eq!(u["attempt"], 1);
    let a = c.get(&format!("{path}?attempt=2"));
    assert!(problem(&a, 404).contains("has no attempt 2"), "{a:?}");
}
