//! Monitoring end to end with the real binary: `/metrics` after a small job
//! ran, parsed strictly as Prometheus' text format; the values it must
//! hold; every metric the Grafana dashboard queries; the autoscaling
//! signal for work no host can take; and who may scrape.

mod common;

use common::Farm;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::Duration;

/// Status, content type and body of `GET path` over HTTP/1.1, as a
/// scraper or curl would send it.
fn get(farm: &Farm, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", farm.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, content_type, body.to_string())
}

/// A series' labels, sorted.
type Labels = Vec<(String, String)>;

/// One sample: its name, labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed strictly: every line is a HELP, a TYPE or a sample;
/// every family has HELP and TYPE before its samples; every histogram's
/// buckets are cumulative, end with +Inf, and +Inf equals its `_count`.
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn parse_labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = std::iter::from_fn(|| chars.next_if(|&c| c != '=')).collect();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name {key:?} in {line}"
        );
        assert_eq!(chars.next(), Some('='), "{line}");
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars
                .next()
                .unwrap_or_else(|| panic!("unterminated value in {line}"))
            {
                '"' => break,
                '\\' => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    c => panic!("bad escape {c:?} in {line}"),
                },
                c => value.push(c),
            }
        }
        assert!(out.insert(key, value).is_none(), "label twice in {line}");
        match chars.next() {
            None => return out,
            Some(',') => {}
            c => panic!("{c:?} after a label value in {line}"),
        }
    }
}

fn value(v: &str, line: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|e| panic!("bad value {v:?} ({e}) in {line}")),
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut helps = BTreeSet::new();
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut samples = Vec::new();
        assert!(text.ends_with('\n'), "the last line ends with a newline");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(valid_name(name), "{line}");
                assert!(helps.insert(name.to_string()), "HELP twice: {line}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(helps.contains(name), "TYPE before HELP: {line}");
                assert!(
                    types.insert(name.into(), kind.into()).is_none(),
                    "TYPE twice: {line}"
                );
                continue;
            }
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, v) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (
                    n,
                    parse_labels(l.strip_suffix('}').expect("labels end with }"), line),
                ),
                None => (series, BTreeMap::new()),
            };
            assert!(valid_name(name), "{line}");
            // The family a sample belongs to has been declared before it.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    let f = name.strip_suffix(s)?;
                    (types.get(f).map(String::as_str) == Some("histogram")).then_some(f)
                })
                .unwrap_or(name);
            let kind = types
                .get(family)
                .unwrap_or_else(|| panic!("no TYPE before {line}"));
            assert!(
                kind != "histogram" || family != name,
                "a histogram's sample without a suffix: {line}"
            );
            assert_eq!(
                name.strip_suffix("_bucket").is_some() && kind == "histogram",
                labels.contains_key("le"),
                "le on a bucket, and only there: {line}"
            );
            samples.push(Sample {
                name: name.into(),
                labels,
                value: value(v, line),
            });
        }
        let scrape = Scrape { types, samples };
        scrape.check_histograms();
        scrape
    }

    fn check_histograms(&self) {
        for (family, _) in self.types.iter().filter(|(_, k)| *k == "histogram") {
            // Series by their labels other than le.
            let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self.of(&format!("{family}_bucket")) {
                let mut l = s.labels.clone();
                let le = value(&l.remove("le").unwrap(), family);
                series
                    .entry(l.into_iter().collect())
                    .or_default()
                    .push((le, s.value));
            }
            for (labels, buckets) in series {
                for w in buckets.windows(2) {
                    assert!(w[0].0 < w[1].0, "{family}{labels:?}: le not ascending");
                    assert!(w[0].1 <= w[1].1, "{family}{labels:?}: not cumulative");
                }
                let last = buckets.last().unwrap();
                assert_eq!(last.0, f64::INFINITY, "{family}{labels:?} ends with +Inf");
                let get = |suffix: &str| {
                    let l: BTreeMap<_, _> = labels.iter().cloned().collect();
                    let name = format!("{family}{suffix}");
                    let v: Vec<&Sample> = self.of(&name).filter(|s| s.labels == l).collect();
                    assert_eq!(v.len(), 1, "{name}{labels:?}");
                    v[0].value
                };
                assert_eq!(last.1, get("_count"), "{family}{labels:?}: +Inf != _count");
                assert!(get("_sum") >= 0.0);
            }
        }
    }

    fn of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The one sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .of(name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
        found[0].value
    }
}

/// The metric names in the dashboard's PromQL: every `expr` of its panels
/// and every query of its variables.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/kiln.json"
    );
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        ("query", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    walk(&dash, &mut queries);
    assert!(queries.len() > 20, "{queries:?}");
    let mut names = BTreeSet::new();
    for q in queries {
        // Identifiers; those that name Kiln's metrics start with kiln_.
        let mut word = String::new();
        for c in q.chars().chain([' ']) {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                word.push(c);
            } else {
                if word.starts_with("kiln_") {
                    names.insert(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
    }
    names
}

const NO_FIT: &str = "name: wide\nlayers:\n  - {name: a, command: 'true', frames: 1-3, cores: 8}\n";

#[test]
fn a_scrape_after_a_job_parses_holds_its_figures_and_every_dashboard_metric() {
    let farm = Farm::start(1, 2);
    let token = common::admin_token(&farm.path("data"));
    let job = farm.submit("small", &common::one_layer("small", "true", "1-4"));
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    // Three frames of 8 cores: no host (of 2) can take them.
    let wide = farm.submit("wide", NO_FIT);

    let (status, _, body) = get(&farm, "/metrics", None);
    assert_eq!(status, 401, "{body}");

    let mut scrape = None;
    common::wait_until(Duration::from_secs(20), || {
        let (status, content_type, body) = get(&farm, "/metrics", Some(&token));
        assert_eq!(status, 200, "{body}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        let s = Scrape::parse(&body);
        let settled = s
            .of("kiln_frames_waiting")
            .any(|x| x.labels["reason"] == "no_fit");
        scrape = Some(s);
        settled
    });
    let s = scrape.unwrap();
    let alloc = [("allocation", "local.general")];
    assert_eq!(
        s.value("kiln_frames_ended_total", &[("outcome", "succeeded")]),
        4.0
    );
    assert_eq!(
        s.value("kiln_frames_ended_total", &[("outcome", "failed")]),
        0.0
    );
    assert_eq!(s.value("kiln_frame_pickup_seconds_count", &[]), 4.0);
    assert_eq!(s.value("kiln_frame_runtime_seconds_count", &[]), 4.0);
    assert!(s.value("kiln_store_commit_seconds_count", &[]) >= 1.0);
    assert!(s.value("kiln_scheduler_pass_seconds_count", &[]) >= 1.0);
    assert_eq!(s.value("kiln_frames", &[("state", "succeeded")]), 4.0);
    assert_eq!(
        s.value(
            "kiln_frames_waiting",
            &[("show", "default"), ("reason", "no_fit")]
        ),
        3.0
    );
    assert_eq!(s.value("kiln_cores_up", &alloc), 2.0);
    assert_eq!(s.value("kiln_cores_idle", &alloc), 2.0);
    assert_eq!(s.value("kiln_cores_busy", &alloc), 0.0);
    assert_eq!(s.value("kiln_autoscale_wanted_cores", &alloc), 24.0);
    assert_eq!(
        s.value("kiln_hosts", &[("state", "up"), ("locked", "false")]),
        1.0
    );
    // The CLI's submits came over gRPC, the scrapes over REST: each by its
    // method or route template, never a raw path.
    assert_eq!(
        s.value(
            "kiln_api_request_seconds_count",
            &[("wire", "grpc"), ("route", "/kiln.v1.Farm/Submit")]
        ),
        2.0
    );
    // The refused scrape at least; each is counted once it is answered.
    assert!(s.value("kiln_api_request_seconds_count", &[("route", "/metrics")]) >= 1.0);
    let job_routes: Vec<&str> = s
        .of("kiln_api_request_seconds_count")
        .map(|x| x.labels["route"].as_str())
        .collect();
    assert!(
        job_routes.iter().all(|r| !r.contains(&wide)),
        "{job_routes:?}"
    );

    // Every metric the dashboard queries is served.
    let names = dashboard_metrics();
    assert!(names.len() >= 15, "{names:?}");
    let served: BTreeSet<&str> = s.samples.iter().map(|x| x.name.as_str()).collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !served.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not serve: {missing:?}"
    );

    // The autoscaling signal as JSON, as an autoscaler reads it.
    let (status, content_type, body) = get(&farm, "/api/v1/autoscale", Some(&token));
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let a = &v["allocations"][0];
    assert_eq!(a["allocation"], "local.general", "{v}");
    assert_eq!(a["wanted_cores"], 24.0, "{v}");
    assert_eq!(a["idle_cores"], 2.0, "{v}");
    let (status, _, _) = get(&farm, "/api/v1/autoscale", None);
    assert_eq!(status, 401);

    // Killed, the wide job wants nothing more.
    farm.kiln(&["kill", &wide]);
    let (_, _, body) = get(&farm, "/api/v1/autoscale", Some(&token));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["allocations"][0]["wanted_cores"], 0.0, "{v}");
}

#[test]
fn metrics_need_a_token_that_may_read_the_farm_unless_served_publicly() {
    let mut farm = Farm::start(0, 1);
    let nobody = farm.user("nobody", &[]);
    let (status, content_type, body) = get(&farm, "/metrics", Some(&nobody));
    assert_eq!(
        (status, content_type.as_str()),
        (403, "application/problem+json"),
        "{body}"
    );
    farm.kill_server();
    farm.start_server_with(&["--metrics-public"], None);
    let (status, _, body) = get(&farm, "/metrics", None);
    assert_eq!(status, 200, "{body}");
    Scrape::parse(&body);
    let (status, _, _) = get(&farm, "/api/v1/autoscale", None);
    assert_eq!(status, 200);
    // Only the metrics: the rest of the API still wants a token.
    let (status, _, _) = get(&farm, "/api/v1/jobs", None);
    assert_eq!(status, 401);
}

/// A webhook whose receiver is down shows as failing and behind, and its
/// tries are counted; once deleted it leaves the scrape.
#[test]
fn a_failing_webhook_shows_in_the_scrape() {
    let farm = Farm::start(0, 1);
    let token = common::admin_token(&farm.path("data"));
    let out = farm.kiln(&[
        "webhook",
        "create",
        "http://127.0.0.1:9/nobody-listens",
        "--events",
        "all",
        "--json",
    ]);
    let made: Value = serde_json::from_str(&out).unwrap();
    let id = made["webhook"]["id"].to_string();
    farm.kiln(&["show", "create", "hooked"]);
    let mut scrape = None;
    common::wait_until(Duration::from_secs(20), || {
        let (_, _, body) = get(&farm, "/metrics", Some(&token));
        let s = Scrape::parse(&body);
        let failing = s.value("kiln_webhook_failing", &[("webhook", &id), ("show", "")]) == 1.0;
        scrape = Some(s);
        failing
    });
    let s = scrape.unwrap();
    assert!(s.value("kiln_webhook_behind_events", &[("webhook", &id)]) >= 1.0);
    assert!(s.value("kiln_webhook_deliveries_total", &[("outcome", "retrying")]) >= 1.0);
    assert_eq!(
        s.value("kiln_webhook_deliveries_total", &[("outcome", "delivered")]),
        0.0
    );
    farm.kiln(&["webhook", "delete", &id]);
    let (_, _, body) = get(&farm, "/metrics", Some(&token));
    assert_eq!(Scrape::parse(&body).of("kiln_webhook_failing").count(), 0);
}

/// The web UI's charts: the farm sampled over time, busy cores by show and
/// hosts by state among them, read from a time on; only with a token.
#[test]
fn the_farm_is_sampled_over_time_for_the_charts() {
    let mut farm = Farm::start(0, 1);
    farm.kill_server();
    farm.start_server_with(&["--sample-every", "1s"], None);
    farm.add_worker("w0", 2);
    farm.wait_hosts(1);
    let token = common::token_for(&farm.url()).unwrap();
    farm.submit("busy", &common::one_layer("busy", "sleep 5", "1-2"));
    common::wait_until(Duration::from_secs(20), || {
        farm.job_status("busy") == "RUNNING"
    });
    std::thread::sleep(Duration::from_millis(3000));
    let (status, _, body) = get(&farm, "/api/v1/farm/history", Some(&token));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let samples = v["samples"].as_array().unwrap();
    assert!(samples.len() >= 3, "one a second: {body}");
    let at: Vec<i64> = samples.iter().map(|s| s["at"].as_i64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    assert!(
        samples.iter().any(|s| s["cores_busy"] == 200
            && s["shows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["show"] == "default" && x["busy"] == 200)),
        "both frames' cores, counted for their show: {body}"
    );
    let last = samples.last().unwrap();
    assert_eq!(
        last["hosts"],
        serde_json::json!([{"state": "UP", "count": 1}])
    );
    let since = at[at.len() - 2];
    let (_, _, body) = get(
        &farm,
        &format!("/api/v1/farm/history?since={since}"),
        Some(&token),
    );
    let recent: Value = serde_json::from_str(&body).unwrap();
    assert!(recent["samples"].as_array().unwrap().len() >= 2, "{body}");
    assert!(
        recent["samples"].as_array().unwrap().len() < samples.len() + 2,
        "{body}"
    );
    let (status, ..) = get(&farm, "/api/v1/farm/history", None);
    assert_eq!(status, 401);
    // Kept in the store as they are taken: a server SIGKILLed and started
    // again still draws the charts from before.
    farm.kill_server();
    farm.start_server_with(&["--sample-every", "1s"], None);
    let (status, _, body) = get(&farm, "/api/v1/farm/history", Some(&token));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let after: Vec<i64> = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at"].as_i64().unwrap())
        .collect();
    assert!(
        at.iter().all(|t| after.contains(t)),
        "the samples before the restart, {at:?}, are in {after:?}"
    );
}
