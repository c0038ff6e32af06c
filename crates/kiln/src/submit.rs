//! `kiln submit`, and waiting on jobs with a live progress bar.

use crate::fmt;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_core::view::{JobStatus, Submitted};
use kiln_proto::client::Client;
use kiln_proto::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
#[command(
    after_help = "An Open Job Description job template (specificationVersion: \
jobtemplate-2023-09) is submitted like a spec, its parameters given with -p:\n  \
kiln submit render.yaml -p Frame=1-100 -p SceneFile=/x.blend --show ads\n\
See docs/openjd.md for what is supported."
)]
pub struct SubmitArgs {
    /// The job spec: a YAML or JSON file (see docs/spec.md), an OpenJD job
    /// template (see docs/openjd.md), or - for stdin.
    spec: PathBuf,
    /// A value for an OpenJD template's job parameter; repeat for each one.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// OpenJD template parameter values from a JSON or YAML file holding a
    /// map of NAME: VALUE; -p values win over the file's.
    #[arg(long, value_name = "FILE")]
    param_file: Option<PathBuf>,
    /// The show an OpenJD template's job goes to (a Kiln spec says `show:`).
    #[arg(long)]
    show: Option<String>,
    /// The shot of an OpenJD template's job.
    #[arg(long)]
    shot: Option<String>,
    /// The priority of an OpenJD template's job (default: the show's).
    #[arg(long)]
    priority: Option<i64>,
    /// How often each task of an OpenJD template's job is retried (default 3).
    #[arg(long)]
    retries: Option<i64>,
    /// Wait for the job, showing progress; exit 0 only if every frame succeeded.
    #[arg(long, short)]
    wait: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// The submit's idempotency key (default: a new random one). Submitting
    /// again with the key of a submit that made a job returns that job.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// How long to keep retrying, with the same key, a submit whose outcome
    /// is unknown (the server unreachable or gone during the call).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    retry_for: u64,
    /// Run the job as this user instead of yourself (needs the impersonate
    /// right: a pipeline's service account). A spec's `user:` does the same.
    #[arg(long = "as", value_name = "USER")]
    run_as: Option<String>,
}

/// Reads a spec file (or stdin for `-`): its text, and the directory that
/// relative paths in it resolve against.
fn read_spec(path: &Path) -> Result<(String, Option<String>)> {
    let (bytes, base) = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("reading the spec from stdin")?;
        (bytes, std::env::current_dir().ok())
    } else {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the spec {}", path.display()))?;
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        (bytes, abs.parent().map(Path::to_path_buf))
    };
    let text =
        String::from_utf8(bytes).map_err(|e| kiln_proto::server::not_utf8(e.utf8_error()))?;
    Ok((text, base.map(|b| b.display().to_string())))
}

/// The submit's parameters: the file's, then each `-p`, then Kiln's own
/// settings under `kiln.` names (docs/openjd.md).
fn params(a: &SubmitArgs) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if let Some(f) = &a.param_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the parameter file {}", f.display()))?;
        let v: serde_json::Value = serde_norway::from_str(&text)
            .with_context(|| format!("{} is not JSON or YAML", f.display()))?;
        let Some(map) = v.as_object() else {
            bail!("{} must hold a map of NAME: VALUE", f.display());
        };
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => bail!(
                    "{}: the value of {k} must be a string or a number",
                    f.display()
                ),
            };
            out.insert(k.clone(), v);
        }
    }
    for p in &a.params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("-p {p:?}: give NAME=VALUE");
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    let extras = [
        ("show", a.show.clone()),
        ("shot", a.shot.clone()),
        ("priority", a.priority.map(|p| p.to_string())),
        ("retries", a.retries.map(|r| r.to_string())),
    ];
    for (k, v) in extras {
        if let Some(v) = v {
            out.insert(format!("{}{k}", kiln_core::spec::openjd::KILN_PREFIX), v);
        }
    }
    Ok(out)
}

/// A fresh idempotency key: 128 random bits as 32 hex digits.
fn new_key() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if random.is_err() {
        // No urandom (a strange chroot): time and pid still make a key no
        // other invocation has.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = (t ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads a spec file and submits it once, as the signed-in user, with a
/// fresh key (for `kiln up`, whose server is local).
pub async fn submit_file(client: &Client, path: &Path) -> Result<Submitted> {
    let (text, base) = read_spec(path)?;
    Ok(client
        .submit(text, String::new(), base, Some(new_key()))
        .await?)
}

/// The shortest and longest a single try may wait for its answer.
const TRY_MIN: Duration = Duration::from_secs(5);
const TRY_MAX: Duration = Duration::from_secs(60);

/// Submits with one key until the server answers or `retry_for` has
/// passed. A submit whose outcome is unknown is sent again: the key makes
/// the server return the job the first one made, if it made one. The error
/// says "nothing was submitted" only when that is certain.
async fn submit_retrying(
    server: &str,
    text: String,
    base: Option<String>,
    key: &str,
    run_as: Option<&str>,
    params: &BTreeMap<String, String>,
    retry_for: Duration,
) -> Result<(Client, Submitted)> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(200);
    // Whether any try may have reached the server.
    let mut unsure = false;
    let mut noted: Option<Instant> = None;
    loop {
        // A server that accepts but never answers (frozen, swapping) must
        // not hold the CLI forever: a try past its share of the time has an
        // unknown outcome, and is sent again with the same key.
        let limit = retry_for
            .saturating_sub(started.elapsed())
            .clamp(TRY_MIN, TRY_MAX);
        let attempt = async {
            let c = crate::session::connect(server).await?;
            let s = c
                .submit_with(
                    text.clone(),
                    run_as.unwrap_or_default().to_string(),
                    base.clone(),
                    Some(key.into()),
                    params.clone(),
                )
                .await?;
            Ok::<_, Error>((c, s))
        };
        let e = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(e)) => e,
            Err(_) => Error::Unavailable(format!(
                "the server at {server} did not answer within {}s",
                limit.as_secs()
            )),
        };
        // The server answered a refusal: its validation is a function of
        // the spec, and the key is looked up before anything else of the
        // farm, so no earlier try made the job either. (An internal error
        // may come from anywhere, so it settles nothing.)
        let answered = matches!(
            e,
            Error::Invalid(_)
                | Error::NotFound(_)
                | Error::Forbidden(_)
                | Error::Unauthenticated(_)
        );
        // Whether this try may have reached the server.
        unsure |= matches!(e, Error::Unavailable(_) | Error::Malformed(_));
        let retry = matches!(e, Error::Unavailable(_) | Error::Unreached(_));
        if !retry || started.elapsed() >= retry_for {
            let outcome = if answered || !unsure {
                "nothing was submitted".to_string()
            } else {
                format!(
                    "the job may or may not have been submitted (no answer for {}s): run the \
                     same submit with `--key {key}` to find out; a job already made with that \
                     key is returned, not made again",
                    started.elapsed().as_secs()
                )
            };
            bail!("{e}\n{outcome}");
        }
        if noted.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            eprintln!(
                "kiln submit: {e}\nretrying with the same key, for up to {}s in all ...",
                retry_for.as_secs()
            );
            noted = Some(Instant::now());
        }
        tokio::time::sleep(pause.min(retry_for.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

pub async fn submit(a: SubmitArgs, server: &str) -> Result<ExitCode> {
    let (text, base) = read_spec(&a.spec).map_err(|e| anyhow!("{e:#}\nnothing was submitted"))?;
    let params = params(&a).map_err(|e| anyhow!("{e:#}\nnothing was submitted"))?;
    let key = a.key.unwrap_or_else(new_key);
    let (client, s) = submit_retrying(
        server,
        text,
        base,
        &key,
        a.run_as.as_deref(),
        &params,
        Duration::from_secs(a.retry_for),
    )
    .await?;
    if a.json && !a.wait {
        fmt::json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !a.json {
        println!(
            "submitted job {} ({}) with {} frame(s)",
            s.name, s.id, s.frames
        );
    }
    if !a.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let ok = wait(&client, &s.id.to_string(), a.json).await?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Follows a job until it is over or stuck failed; true if every frame
/// succeeded.
pub async fn wait(client: &Client, job: &str, quiet: bool) -> Result<bool> {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} done  {msg}  {elapsed}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    loop {
        let d = client.job(job).await?;
        let j = &d.job;
        bar.set_prefix(j.name.clone());
        bar.set_length(j.total as u64);
        bar.set_position(j.counts.done() as u64);
        bar.set_message(format!(
            "{} running, {} failed",
            j.counts.running, j.counts.dead
        ));
        bar.tick();
        let over = matches!(
            j.status,
            JobStatus::Finished | JobStatus::Killed | JobStatus::Failed
        );
        if over {
            bar.finish_and_clear();
            let ok = j.status == JobStatus::Finished && j.counts.succeeded == j.total;
            if quiet {
                fmt::json(&d)?;
            } else {
                println!(
                    "job {} {}: {} succeeded, {} dead, {} eaten of {}",
                    j.name,
                    j.status.to_string().to_lowercase(),
                    j.counts.succeeded,
                    j.counts.dead,
                    j.counts.eaten,
                    j.total
                );
                if j.counts.dead > 0 {
                    println!(
                        "see why with `kiln frames {} --state dead` and `kiln log {} LAYER/FRAME`",
                        j.id, j.id
                    );
                }
            }
            return Ok(ok);
        }
        // Poll quickly at first (short jobs finish fast), then back off.
        let waited = started.elapsed();
        let pause = if waited < Duration::from_secs(2) {
            20
        } else if waited < Duration::from_secs(30) {
            100
        } else {
            500
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
