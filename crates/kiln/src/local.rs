//! Long-running commands: `kiln server`, `kiln worker`, and `kiln up`, a
//! local farm with both in one process.

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_core::farm::FarmConfig;
use kiln_core::size::{parse_duration_s, parse_memory_kb};
use kiln_proto::conn::ConnLimits;
use kiln_server::tls::Tls;
use kiln_server::{Retention, ServerConfig};
use kiln_worker::WorkerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServerArgs {
    /// Data directory (store and logs). Default: $KILN_DATA or ~/.local/share/kiln.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address to listen on, for clients and workers alike.
    #[arg(long, default_value = crate::DEFAULT_LISTEN)]
    listen: String,
    /// Mark a host DOWN and requeue its frames after this much silence.
    #[arg(long, default_value = "60s")]
    down_after: String,
    /// Close a client connection with no request in flight and no open
    /// stream for this long (0: never).
    #[arg(long, default_value = "5m")]
    idle_timeout: String,
    /// Close a connection that has not sent the HTTP/2 preface this long
    /// after it opened.
    #[arg(long, default_value = "5s")]
    preface_timeout: String,
    /// Keep events (`kiln events`, `GET /api/v1/events`) this long for
    /// clients catching up; older ones are pruned.
    #[arg(long, default_value = "7d")]
    event_retention: String,
    /// How often the farm's gauges are sampled for the web UI's charts of
    /// the last day (cores by show, frames waiting by reason, hosts by
    /// state).
    #[arg(long, default_value = "15s")]
    sample_every: String,
    /// Connections at once from one IP address (0: no cap). `kiln fleet`
    /// opens one per 64 simulated hosts.
    #[arg(long, default_value = "256")]
    max_connections_per_address: usize,
    /// The server's TLS certificate (PEM, the chain after it). Default: one
    /// from the server's own CA, made in the data directory (ca.pem is
    /// what clients pass as --ca).
    #[arg(long, requires = "tls_key", conflicts_with = "plaintext")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A name clients use for this server (DNS name or IP address), added to
    /// the certificate the server makes. Repeatable.
    #[arg(long = "tls-name", conflicts_with_all = ["plaintext", "tls_cert"])]
    tls_names: Vec<String>,
    /// No TLS: only when listening on a loopback address.
    #[arg(long)]
    plaintext: bool,
    /// Finished and killed jobs leave the farm (and `kiln jobs --all`) this
    /// long after they end; `kiln history` still reads them (never: keep).
    #[arg(long, default_value = "7d")]
    archive_after: String,
    /// Archived jobs' history is deleted this long after archiving (never: keep).
    #[arg(long, default_value = "365d")]
    history_retention: String,
    /// Frame logs are deleted this long after their last line (never: keep).
    #[arg(long, default_value = "30d")]
    log_retention: String,
    /// How often the server archives and deletes what the retention flags say.
    #[arg(long, default_value = "60s", hide = true)]
    retention_every: String,
    /// Serve /metrics and /api/v1/autoscale without a token, for a
    /// Prometheus on a trusted network (otherwise a scraper needs a token
    /// that may read the farm).
    #[arg(long)]
    metrics_public: bool,
    #[command(flatten)]
    ldap: crate::ldap::LdapArgs,
}

/// A retention flag: a duration, or `never`.
fn keep_for(flag: &str, v: &str) -> Result<Option<i64>> {
    if v.trim().eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    let s = parse_duration_s(v)
        .map_err(|e| anyhow::anyhow!("--{flag}: {e}; or give `never` to keep forever"))?;
    Ok(Some(s as i64 * 1000))
}

fn retention(a: &ServerArgs) -> Result<Retention> {
    let every = keep_for("retention-every", &a.retention_every)?
        .filter(|&ms| ms > 0)
        .ok_or_else(|| anyhow::anyhow!("--retention-every: give a duration above zero, as 60s"))?;
    Ok(Retention {
        archive_after_ms: keep_for("archive-after", &a.archive_after)?,
        history_ms: keep_for("history-retention", &a.history_retention)?,
        logs_ms: keep_for("log-retention", &a.log_retention)?,
        every_ms: every,
    })
}

#[derive(Args)]
pub struct WorkerArgs {
    /// Host name to register as (default: this machine's hostname).
    #[arg(long)]
    name: Option<String>,
    /// Tags for this host, comma-separated (layers can require them).
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Cores to offer (default: all), e.g. 16 or 7.5.
    #[arg(long)]
    cores: Option<f64>,
    /// Memory to offer (default: all), e.g. 64G.
    #[arg(long)]
    memory: Option<String>,
    /// Scratch directory for frame working dirs and local logs.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Allow frames to run as root (uid 0).
    #[arg(long)]
    allow_root: bool,
    /// The most log a frame may write, e.g. 1G or 500M: the server keeps the
    /// first so many bytes and a note that the rest was dropped (the frame
    /// goes on).
    #[arg(long, default_value = "1G")]
    log_cap: String,
    /// When the host's available memory falls below this, kill the frame
    /// furthest over its memory reservation (reported out of memory).
    /// Default: 5% of the host's memory, between 128M and 1G; 0: never.
    #[arg(long)]
    min_available_memory: Option<String>,
    /// Run frames in process groups only, not in cgroups of their own (a
    /// process a frame starts in a session of its own then survives it).
    #[arg(long)]
    no_cgroups: bool,
    /// A worker join token (`kiln token create --worker`): exchanged once
    /// for this host's own credential, kept in --work-dir. Needed on the
    /// first start only.
    #[arg(long, value_name = "TOKEN", env = "KILN_JOIN", hide_env_values = true)]
    join: Option<String>,
    /// On the first start over https: trust the CA the server presents if
    /// its fingerprint is this (`SHA256:…`, printed by `kiln server` and by
    /// `kiln token create --worker`). The CA is then kept in --work-dir,
    /// as one given with --ca is, and trusted from then on.
    #[arg(long, value_name = "SHA256:…")]
    fingerprint: Option<String>,
    /// Run every frame as the worker's own account, whatever the job's user
    /// (a single-user farm). A root worker otherwise switches to the job's
    /// user.
    #[arg(long)]
    run_as_self: bool,
}

#[derive(Args)]
pub struct UpArgs {
    /// Data directory. Default: <default data dir>/local.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address the local server listens on, plaintext: a loopback address
    /// only (a farm across machines runs `kiln server`, which uses TLS).
    #[arg(long, default_value = crate::DEFAULT_LISTEN)]
    listen: String,
    /// Job specs to submit once the farm is up.
    #[arg(long)]
    submit: Vec<PathBuf>,
    /// Stop the farm when the submitted jobs are over (exit 1 if any failed).
    #[arg(long)]
    exit_when_done: bool,
    /// Cores the local worker offers (default: all).
    #[arg(long)]
    cores: Option<f64>,
    /// Memory the local worker offers (default: all).
    #[arg(long)]
    memory: Option<String>,
}

const DAEMON_LOG: &str = "warn,kiln_server=info,kiln_worker=info";

fn farm_config(down_after: &str) -> Result<FarmConfig> {
    let down = parse_duration_s(down_after).map_err(|e| anyhow::anyhow!("--down-after: {e}"))?;
    if down == 0 {
        bail!("--down-after: must be at least 1s");
    }
    let down_after_ms = down as i64 * 1000;
    Ok(FarmConfig {
        down_after_ms,
        // Several heartbeats fit in the silence window before a host is DOWN.
        heartbeat_ms: (down_after_ms / 6).clamp(200, 5_000) as u32,
        ..FarmConfig::default()
    })
}

async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: is another kiln server running? Choose another address with --listen")
    })
}

/// Plaintext is for loopback only: `what` may not listen on `addr` otherwise.
fn only_loopback(addr: std::net::SocketAddr, what: &str, fix: &str) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!(
            "{what}: the server listens on {addr}, which is not a loopback address; \
             plaintext is only for loopback. {fix}, or listen on 127.0.0.1"
        );
    }
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

pub async fn server(a: ServerArgs) -> Result<ExitCode> {
    init_logging(DAEMON_LOG);
    let retention = retention(&a)?;
    let ldap = a.ldap.config()?;
    let metrics_public = a.metrics_public;
    let data = a.data.unwrap_or_else(crate::default_data_dir);
    let farm = farm_config(&a.down_after)?;
    let idle =
        parse_duration_s(&a.idle_timeout).map_err(|e| anyhow::anyhow!("--idle-timeout: {e}"))?;
    let preface = parse_duration_s(&a.preface_timeout)
        .map_err(|e| anyhow::anyhow!("--preface-timeout: {e}"))?;
    if preface == 0 {
        bail!("--preface-timeout: must be at least 1s");
    }
    let event_retention = crate::parse::duration(&a.event_retention)
        .map_err(|e| anyhow::anyhow!("--event-retention: {e}"))?;
    let sample_every = crate::parse::duration(&a.sample_every)
        .map(std::time::Duration::from_secs)
        .map_err(|e| anyhow::anyhow!("--sample-every: {e}"))?;
    let connections = ConnLimits {
        preface_timeout: std::time::Duration::from_secs(preface),
        idle_timeout: (idle > 0).then(|| std::time::Duration::from_secs(idle)),
        per_address: a.max_connections_per_address,
    };
    let listener = bind(&a.listen).await?;
    let addr = listener.local_addr()?;
    let tls = match (a.tls_cert, a.tls_key) {
        _ if a.plaintext => {
            only_loopback(addr, "--plaintext", "Drop --plaintext (the server then uses TLS, with a CA of its own if --tls-cert is not given)")?;
            Tls::Plaintext
        }
        (Some(cert), Some(key)) => Tls::Files { cert, key },
        _ => {
            let mut names = a.tls_names;
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            Tls::OwnCa { names }
        }
    };
    let scheme = if matches!(tls, Tls::Plaintext) {
        "http"
    } else {
        "https"
    };
    eprintln!(
        "kiln server listening on {scheme}://{addr} (data in {})",
        data.display()
    );
    kiln_server::serve(
        ServerConfig {
            data_dir: data,
            farm,
            connections,
            tls,
            ldap,
            retention,
            event_retention: std::time::Duration::from_secs(event_retention),
            metrics_public,
            sample_every,
        },
        listener,
        shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

fn worker_config(a: WorkerArgs, server: &str) -> Result<WorkerConfig> {
    let cores = a
        .cores
        .map(|c| {
            if !(c > 0.0 && c <= 100_000.0) {
                bail!("--cores: {c} is not a core count; give a positive number such as 8");
            }
            Ok((c * 100.0).round() as u32)
        })
        .transpose()?;
    let memory_kb = a
        .memory
        .map(|m| parse_memory_kb(&m).map_err(|e| anyhow::anyhow!("--memory: {e}")))
        .transpose()?;
    let log_cap_kb = parse_memory_kb(&a.log_cap).map_err(|e| anyhow::anyhow!("--log-cap: {e}"))?;
    if log_cap_kb == 0 {
        bail!("--log-cap: must be at least 1K");
    }
    let min_available_kb = a
        .min_available_memory
        .map(|m| match m.trim() {
            "0" => Ok(0),
            m => parse_memory_kb(m).map_err(|e| anyhow::anyhow!("--min-available-memory: {e}")),
        })
        .transpose()?;
    let is_root = unsafe { libc::geteuid() } == 0;
    let work_dir = a.work_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("kiln-worker-{}", unsafe { libc::geteuid() }))
    });
    Ok(WorkerConfig {
        credential: String::new(),
        server: server.to_string(),
        name: a.name,
        tags: a.tags.into_iter().filter(|t| !t.is_empty()).collect(),
        cores,
        memory_kb,
        work_dir,
        switch_user: is_root && !a.run_as_self,
        allow_root: a.allow_root,
        log_cap: log_cap_kb * 1024,
        // This very binary, whatever replaces it on disk meanwhile.
        shim: Some(PathBuf::from("/proc/self/exe")),
        min_available_kb,
        cgroups: !a.no_cgroups,
    })
}

/// Where a worker keeps the credential of host `name`.
fn credential_file(work_dir: &std::path::Path, name: &str) -> PathBuf {
    work_dir.join(format!("credential-{name}"))
}

/// This host's credential: the one kept in the work directory, else one
/// a join token is exchanged for (and then kept).
async fn host_credential(
    server: &str,
    work_dir: &std::path::Path,
    name: &str,
    join: Option<&str>,
) -> Result<String> {
    let file = credential_file(work_dir, name);
    if let Ok(text) = std::fs::read_to_string(&file) {
        if !text.trim().is_empty() {
            return Ok(text.trim().to_string());
        }
    }
    let Some(token) = join else {
        bail!(
            "host {name} is not enrolled: start the worker once with --join TOKEN \
             (an admin makes one with `kiln token create --worker`)"
        );
    };
    let credential = kiln_proto::client::join(server, token, name)
        .await
        .with_context(|| format!("joining {server} as host {name}"))?;
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    kiln_server::write_secret(&file, &format!("{credential}\n"))
        .with_context(|| format!("keeping the credential in {}", file.display()))?;
    eprintln!(
        "joined {server} as host {name}; its credential is in {}",
        file.display()
    );
    Ok(credential)
}

/// Where a worker keeps the CA it trusts for `server`.
fn pinned_ca_file(work_dir: &std::path::Path, server: &str) -> PathBuf {
    let authority: String = server
        .split("://")
        .last()
        .unwrap_or(server)
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    work_dir.join(format!("ca-{authority}.pem"))
}

/// Which CA the worker trusts for an https server: `--ca` (kept in the
/// work directory at a join), else the one kept there, else the one the
/// server presents if it has the `--fingerprint` given (then kept), else
/// the system's roots.
async fn pin_ca(
    server: &str,
    work_dir: &std::path::Path,
    ca: Option<&std::path::Path>,
    fingerprint: Option<&str>,
    joining: bool,
) -> Result<()> {
    if !server.starts_with("https://") {
        return Ok(());
    }
    let pin = pinned_ca_file(work_dir, server);
    let keep = |pem: &[u8]| -> Result<()> {
        std::fs::create_dir_all(work_dir)
            .with_context(|| format!("creating {}", work_dir.display()))?;
        let pem = String::from_utf8_lossy(pem);
        kiln_server::write_secret(&pin, &pem)
            .with_context(|| format!("keeping the CA in {}", pin.display()))
    };
    if let Some(ca) = ca {
        if joining {
            let pem =
                std::fs::read(ca).with_context(|| format!("--ca: reading {}", ca.display()))?;
            keep(&pem)?;
        }
        return Ok(());
    }
    if pin.is_file() {
        kiln_proto::tls::trust_ca_file(pin);
        return Ok(());
    }
    let Some(expect) = fingerprint else {
        return Ok(());
    };
    let got = kiln_proto::tls::fetch_ca(server).await?;
    if !kiln_proto::tls::same_fingerprint(expect, &got.fingerprint) {
        bail!(
            "--fingerprint: the server at {server} presents a CA with fingerprint {}, not {expect}: \
             check the address and the fingerprint `kiln server` printed; nothing was trusted",
            got.fingerprint
        );
    }
    keep(&got.pem)?;
    eprintln!(
        "trusting {server}'s CA ({}), kept in {}",
        got.fingerprint,
        pin.display()
    );
    kiln_proto::tls::trust_ca_file(pin);
    Ok(())
}

pub async fn worker(a: WorkerArgs, server: &str, ca: Option<&std::path::Path>) -> Result<ExitCode> {
    init_logging(DAEMON_LOG);
    kiln_proto::client::check_url(server)?;
    let join = a.join.clone();
    let fingerprint = a.fingerprint.clone();
    let mut cfg = worker_config(a, server)?;
    pin_ca(
        server,
        &cfg.work_dir,
        ca,
        fingerprint.as_deref(),
        join.is_some(),
    )
    .await?;
    let name = cfg.name.clone().unwrap_or_else(kiln_worker::host::hostname);
    cfg.credential = host_credential(server, &cfg.work_dir, &name, join.as_deref()).await?;
    cfg.name = Some(name);
    eprintln!("kiln worker connecting to {}", cfg.server);
    kiln_worker::run(cfg, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn up(a: UpArgs) -> Result<ExitCode> {
    // A local farm talks to a person at a terminal: only warnings.
    init_logging("warn");
    let data = a
        .data
        .unwrap_or_else(|| crate::default_data_dir().join("local"));
    let listener = bind(&a.listen).await?;
    let addr = listener.local_addr()?;
    only_loopback(
        addr,
        "kiln up",
        "Run `kiln server` and `kiln worker` for a farm other machines use",
    )?;
    let url = format!("http://{addr}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = kiln_server::serve(
        ServerConfig {
            data_dir: data.clone(),
            farm: farm_config("60s")?,
            connections: ConnLimits::default(),
            // The local quick start: loopback only, nothing to set up.
            tls: Tls::Plaintext,
            ldap: None,
            retention: Retention::default(),
            event_retention: kiln_server::DEFAULT_EVENT_RETENTION,
            metrics_public: false,
            sample_every: kiln_server::history::DEFAULT_SAMPLE_EVERY,
        },
        listener,
        stopped(stop_rx.clone()),
    );
    // A single-user local farm: frames run as whoever ran `kiln up`.
    let wcfg = worker_config(
        WorkerArgs {
            name: None,
            tags: vec![],
            cores: a.cores,
            memory: a.memory,
            work_dir: Some(data.join("worker")),
            allow_root: true,
            log_cap: "1G".into(),
            min_available_memory: None,
            no_cgroups: false,
            join: None,
            fingerprint: None,
            run_as_self: true,
        },
        &url,
    )?;
    let (wstop_tx, wstop_rx) = tokio::sync::watch::channel(false);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let worker = tokio::spawn({
        let (url, data) = (url.clone(), data.clone());
        async move {
            // The server may stop before it ever answers (its data
            // directory in use, say): then so does this.
            let enrolled = tokio::select! {
                r = enroll_local(&url, &data, wcfg) => r,
                _ = stopped(wstop_rx.clone()) => return Ok(()),
            };
            let (admin, wcfg) = match enrolled {
                Ok(v) => v,
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = started_tx.send(Ok(admin));
            kiln_worker::run(wcfg, stopped(wstop_rx)).await
        }
    });

    // The server runs in this task (it is not spawned): whichever of it and
    // the driver ends first decides how the farm stops.
    let control = async {
        let admin = started_rx
            .await
            .map_err(|_| anyhow::anyhow!("the local worker stopped before it started"))??;
        // The CLI on this machine signs in to the local farm by itself.
        let kept = crate::session::save_token(&url, &admin)?;
        eprintln!("kiln farm up: API at {url} (data in {})", data.display());
        // The token rides after `#`, which a browser never sends on: one
        // click signs the browser in as the farm's admin.
        eprintln!(
            "  web UI: {}/login#token={admin}",
            url.trim_end_matches('/')
        );
        eprintln!(
            "  you are its admin (token in {}); try: KILN_SERVER={url} kiln jobs     stop: Ctrl-C",
            kept.display()
        );
        drive(&url, &admin, &a.submit, a.exit_when_done).await
    };
    tokio::pin!(server, control);
    let (code, served) = tokio::select! {
        code = &mut control => {
            eprintln!("stopping the farm (frames still running are killed and recorded as such)");
            let _ = wstop_tx.send(true);
            let _ = worker.await;
            let _ = stop_tx.send(true);
            (code, server.await)
        }
        served = &mut server => {
            // The server failed (or stopped) on its own: take the worker down
            // and report why.
            let _ = wstop_tx.send(true);
            let _ = worker.await;
            (Ok(ExitCode::FAILURE), served)
        }
    };
    served?;
    code
}

/// The local farm's admin token, once its server made it and answers to
/// it, and the local worker's config with its host credential (made with a
/// join token of one use on first start, kept in the worker's directory).
async fn enroll_local(
    url: &str,
    data: &std::path::Path,
    mut wcfg: WorkerConfig,
) -> Result<(String, WorkerConfig)> {
    use kiln_core::auth::identity::JoinRules;
    use kiln_core::auth::views::IdentityCmd;
    let file = data.join(kiln_server::ADMIN_TOKEN_FILE);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (admin, client) = loop {
        let token = std::fs::read_to_string(&file).unwrap_or_default();
        let token = token.trim();
        if !token.is_empty() {
            if let Ok(c) = kiln_proto::client::Client::connect_as(url, Some(token)).await {
                if c.whoami().await.is_ok() {
                    break (token.to_string(), c);
                }
            }
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the local server did not come up with an admin token in {}",
                file.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let name = wcfg
        .name
        .clone()
        .unwrap_or_else(kiln_worker::host::hostname);
    let file = credential_file(&wcfg.work_dir, &name);
    if !file.exists() {
        let made = client
            .identity(IdentityCmd::CreateToken {
                name: format!("kiln-up-{name}"),
                user: None,
                expires_in: Some(600_000),
                join: Some(JoinRules {
                    uses_left: Some(1),
                    ..JoinRules::default()
                }),
            })
            .await?;
        let token = made.token.context("the server made no join token")?;
        wcfg.credential = host_credential(url, &wcfg.work_dir, &name, Some(&token)).await?;
    } else {
        wcfg.credential = host_credential(url, &wcfg.work_dir, &name, None).await?;
    }
    wcfg.name = Some(name);
    Ok((admin, wcfg))
}

/// Submits the given specs to the local farm and waits as `kiln up` should:
/// until the jobs are over (then, unless told to exit, until Ctrl-C).
async fn drive(
    url: &str,
    token: &str,
    specs: &[PathBuf],
    exit_when_done: bool,
) -> Result<ExitCode> {
    let client = kiln_proto::client::Client::connect_as(url, Some(token)).await?;
    let mut jobs = Vec::new();
    for spec in specs {
        let s = crate::submit::submit_file(&client, spec).await?;
        eprintln!(
            "submitted job {} ({}) with {} frame(s)",
            s.name, s.id, s.frames
        );
        jobs.push(s.id);
    }
    if jobs.is_empty() {
        shutdown_signal().await;
        return Ok(ExitCode::SUCCESS);
    }
    let mut ok = true;
    let waiting = async {
        for id in &jobs {
            ok &= crate::submit::wait(&client, &id.to_string(), false).await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = waiting => r?,
        _ = shutdown_signal() => return Ok(ExitCode::from(130)),
    }
    if !exit_when_done {
        eprintln!("jobs done; the farm is still up at {url}. Ctrl-C to stop.");
        shutdown_signal().await;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Logs to stderr; `KILN_LOG` (e.g. `debug`, `kiln_server=debug`) overrides.
pub(crate) fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
