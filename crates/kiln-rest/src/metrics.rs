//! Monitoring on the server's one port: `GET /metrics` in Prometheus' text
//! format (0.0.4), `GET /api/v1/autoscale` (the autoscaling signal as
//! JSON), and the layer that records every REST request's latency by
//! route. The farm's gauges come from one `FarmApi::metrics` call; the
//! histograms and counters from the server's recorder. Metric names and
//! what they mean: docs/metrics.md.

use crate::problem::{Error, Problem};
use crate::routes::Who;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kiln_api::metrics::{HistogramSnapshot, Recorder};
use kiln_api::FarmApi;
use kiln_core::model::{Centicores, HostState};
use kiln_core::view::{
    AllocMetrics, Autoscale, FarmMetrics, FarmSample, ShareMetrics, WebhookGauge,
};
use std::fmt::Write;
use std::sync::Arc;

/// The routes, for [`crate::router`] to merge.
pub(crate) fn routes<F: FarmApi>() -> Router<Arc<F>> {
    Router::new()
        .route("/metrics", get(metrics::<F>))
        .route("/api/v1/autoscale", get(autoscale::<F>))
        .route("/api/v1/farm/history", get(history::<F>))
}

/// Wraps `router` so each request's latency is recorded by method and
/// route template (never the raw path: ids would make a series per job).
pub(crate) fn timed(recorder: Option<Arc<Recorder>>, router: Router) -> Router {
    match recorder {
        Some(r) => router.layer(axum::middleware::from_fn_with_state(r, time)),
        None => router,
    }
}

async fn time(State(r): State<Arc<Recorder>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let t = std::time::Instant::now();
    let res = next.run(req).await;
    r.api("rest", &method, &route, t.elapsed());
    res
}

/// Outcomes always listed, so a rate starts from zero.
const OUTCOMES: [&str; 6] = ["succeeded", "failed", "timed_out", "killed", "lost", "oom"];

/// The farm in Prometheus' text format: for a token that may read the
/// farm, or anyone where the server serves metrics publicly.
async fn metrics<F: FarmApi>(State(f): State<Arc<F>>, Who(w): Who) -> Result<Response, Error> {
    let m = f.metrics(w).await?;
    let text = render(&m, f.recorder().as_deref());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Per allocation, the cores waiting work could use now: what a cloud
/// autoscaler should add (docs/metrics.md).
#[utoipa::path(get, path = "/api/v1/autoscale", tag = "farm", responses(
        (status = 200, body = kiln_core::view::Autoscale),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not read the farm", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn autoscale<F: FarmApi>(
    State(f): State<Arc<F>>,
    Who(w): Who,
) -> Result<Json<Autoscale>, Error> {
    Ok(Json(Autoscale::from(&f.metrics(w).await?)))
}

/// The farm's samples over time.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FarmHistoryList {
    pub samples: Vec<FarmSample>,
}

/// The farm over the last day, a sample every `kiln server
/// --sample-every` (15 s by default): cores busy by show against each
/// show's entitlement, frames waiting by reason, hosts by state; the web
/// UI's charts. Kept for a day in the database: a restart keeps them.
#[utoipa::path(get, path = "/api/v1/farm/history", tag = "farm", params(
        ("since" = Option<i64>, Query, description = "Only samples taken at or after this time (ms since the Unix epoch)"),
    ), responses(
        (status = 200, body = FarmHistoryList),
        (status = 400, description = "A parameter is wrong; `detail` names it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token the server accepts", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token holds no role", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn history<F: FarmApi>(
    State(f): State<Arc<F>>,
    Who(w): Who,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Json<FarmHistoryList>, Error> {
    let p = crate::query::Params::parse(q.as_deref(), &["since"])?;
    let since = crate::query::time_ms(&p, "since")?;
    Ok(Json(FarmHistoryList {
        samples: f.farm_history(w, since).await?,
    }))
}

/// One figure of a record.
type Field<T> = fn(&T) -> Centicores;
/// One gauge's value of a record.
type Gauge<T> = fn(&T) -> f64;

/// The exposition text of `m` and what `r` recorded.
pub fn render(m: &FarmMetrics, r: Option<&Recorder>) -> String {
    let mut t = Text(String::with_capacity(8192));
    let cores = |c: Centicores| c as f64 / 100.0;
    let per_alloc: [(&str, &str, Field<AllocMetrics>); 5] = [
        ("kiln_cores_up", "Cores offered by the allocation's UP hosts.", |a| a.cores_total),
        ("kiln_cores_busy", "Cores held by running frames.", |a| a.cores_busy),
        ("kiln_cores_idle", "Free cores on hosts that can take work (UP, open, connected).", |a| a.cores_idle),
        ("kiln_cores_stranded", "Idle cores on hosts where the smallest frame waiting for a host does not fit for want of memory, GPUs or scratch.", |a| a.cores_stranded),
        ("kiln_autoscale_wanted_cores", "Cores that frames no current host can take could use in the allocation now, within their shows' burst.", |a| a.wanted_cores),
    ];
    for (name, help, get) in per_alloc {
        t.family(name, help, "gauge");
        for a in &m.allocations {
            t.sample(
                name,
                &[("allocation", &a.name), ("facility", &a.facility)],
                cores(get(a)),
            );
        }
    }
    t.family(
        "kiln_hosts",
        "Hosts by allocation, state and lock.",
        "gauge",
    );
    for h in &m.hosts {
        let state = match h.state {
            HostState::Up => "up",
            HostState::Down => "down",
            HostState::Repair => "repair",
        };
        let locked = if h.locked { "true" } else { "false" };
        let labels = [
            ("allocation", h.allocation.as_str()),
            ("state", state),
            ("locked", locked),
        ];
        t.sample("kiln_hosts", &labels, h.count as f64);
    }
    t.family(
        "kiln_frames_waiting",
        "WAITING frames (DEPEND included) by show and the reason they wait.",
        "gauge",
    );
    for w in &m.waiting {
        let labels = [("show", w.show.as_str()), ("reason", w.reason.as_str())];
        t.sample("kiln_frames_waiting", &labels, w.frames as f64);
    }
    t.family(
        "kiln_frames",
        "Frames of the jobs in the farm by state.",
        "gauge",
    );
    let f = &m.frames;
    for (state, n) in [
        ("waiting", f.waiting),
        ("depend", f.depend),
        ("running", f.running),
        ("succeeded", f.succeeded),
        ("dead", f.dead),
        ("eaten", f.eaten),
    ] {
        t.sample("kiln_frames", &[("state", state)], n as f64);
    }
    t.family(
        "kiln_jobs",
        "Jobs in the farm, finished ones included.",
        "gauge",
    );
    t.sample("kiln_jobs", &[], m.jobs as f64);
    let per_share: [(&str, &str, Field<ShareMetrics>); 3] = [
        (
            "kiln_show_cores",
            "Cores the show's running frames hold in the allocation.",
            |s| s.used,
        ),
        (
            "kiln_show_subscription_size_cores",
            "The show's guaranteed cores in the allocation (its subscription's size).",
            |s| s.size,
        ),
        (
            "kiln_show_subscription_burst_cores",
            "The most cores the show may hold in the allocation (its subscription's burst).",
            |s| s.burst,
        ),
    ];
    for (name, help, get) in per_share {
        t.family(name, help, "gauge");
        for s in &m.shares {
            t.sample(
                name,
                &[("show", &s.show), ("allocation", &s.allocation)],
                cores(get(s)),
            );
        }
    }
    let per_webhook: [(&str, &str, Gauge<WebhookGauge>); 2] = [
        (
            "kiln_webhook_behind_events",
            "Events after the last one each webhook handled (delivered, refused or not matching).",
            |w| w.behind as f64,
        ),
        (
            "kiln_webhook_failing",
            "1 while a webhook's receiver has not taken its next event.",
            |w| if w.failing { 1.0 } else { 0.0 },
        ),
    ];
    for (name, help, get) in per_webhook {
        t.family(name, help, "gauge");
        for w in &m.webhooks {
            let id = w.id.to_string();
            t.sample(name, &[("webhook", &id), ("show", &w.show)], get(w));
        }
    }
    let Some(r) = r else {
        return t.0;
    };
    let tries = r.delivery_counts();
    t.family(
        "kiln_webhook_deliveries_total",
        "Webhook delivery tries since the server started, by outcome (delivered, retrying, rejected).",
        "counter",
    );
    for o in ["delivered", "retrying", "rejected"] {
        let n = tries.get(o).copied().unwrap_or(0);
        t.sample("kiln_webhook_deliveries_total", &[("outcome", o)], n as f64);
    }
    let ended = r.ended_counts();
    t.family(
        "kiln_frames_ended_total",
        "Attempts ended since the server started, by outcome.",
        "counter",
    );
    for o in OUTCOMES {
        let n = ended.get(o).copied().unwrap_or(0);
        t.sample("kiln_frames_ended_total", &[("outcome", o)], n as f64);
    }
    t.family(
        "kiln_oom_kills_total",
        "Attempts killed for using more memory than they reserved, since the server started.",
        "counter",
    );
    t.sample(
        "kiln_oom_kills_total",
        &[],
        ended.get("oom").copied().unwrap_or(0) as f64,
    );
    for (name, help, h) in [
        ("kiln_frame_pickup_seconds", "How long each frame waited from ready (its job's submit or its last attempt's end) to started; frames held by a dependency are left out.", &r.pickup),
        ("kiln_frame_runtime_seconds", "How long each attempt ran, observed when it ended.", &r.runtime),
        ("kiln_scheduler_pass_seconds", "One scheduling pass: plan and apply.", &r.pass),
        ("kiln_store_commit_seconds", "One store transaction (a batch of changes, one fsync).", &r.commit),
        ("kiln_event_delivery_seconds", "Each event to each live follower (SSE, gRPC): from its publication, just after its commit, to its being handed to the client's connection.", &r.delivery),
    ] {
        t.family(name, help, "histogram");
        t.histogram(name, &[], &h.snapshot());
    }
    let name = "kiln_api_request_seconds";
    t.family(name, "API requests' latency by wire (rest, grpc), method and route (a REST route's template, a gRPC method's path).", "histogram");
    for ((wire, method, route), h) in r.api_latencies() {
        t.histogram(
            name,
            &[("wire", wire), ("method", &method), ("route", &route)],
            &h,
        );
    }
    t.0
}

/// Prometheus text exposition format 0.0.4.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"");
                for c in val.chars() {
                    match c {
                        '\\' => self.0.push_str("\\\\"),
                        '"' => self.0.push_str("\\\""),
                        '\n' => self.0.push_str("\\n"),
                        c => self.0.push(c),
                    }
                }
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(v));
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for &(le, n) in &h.buckets {
            let le = number(le);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, n as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::view::{WaitingCount, WhyKind};
    use std::time::Duration;

    #[test]
    fn text_escapes_labels_and_ends_histograms_with_inf() {
        let m = FarmMetrics {
            allocations: vec![AllocMetrics {
                name: "local.general".into(),
                facility: "local".into(),
                cores_total: 250,
                ..AllocMetrics::default()
            }],
            waiting: vec![WaitingCount {
                show: "a\"b\\c".into(),
                reason: WhyKind::NoFit,
                frames: 3,
            }],
            ..FarmMetrics::default()
        };
        let r = Recorder::default();
        r.pass.observe(Duration::from_millis(3));
        r.api(
            "rest",
            "GET",
            "/api/v1/jobs/{job}",
            Duration::from_millis(1),
        );
        let t = render(&m, Some(&r));
        for line in [
            "kiln_cores_up{allocation=\"local.general\",facility=\"local\"} 2.5",
            "kiln_frames_waiting{show=\"a\\\"b\\\\c\",reason=\"no_fit\"} 3",
            "kiln_scheduler_pass_seconds_bucket{le=\"0.005\"} 1",
            "kiln_scheduler_pass_seconds_bucket{le=\"+Inf\"} 1",
            "kiln_scheduler_pass_seconds_count 1",
            "kiln_frames_ended_total{outcome=\"oom\"} 0",
            "kiln_api_request_seconds_count{wire=\"rest\",method=\"GET\",route=\"/api/v1/jobs/{job}\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
    }
}
