//! Kiln's server: loads the farm from the store, runs the applier that owns
//! it, and serves the client API and the worker link on one port.
//!
//! Data directory layout: `kiln.db` (the SQLite store), `logs/` (one
//! file per frame attempt), `kiln.lock` (held by the one server using it),
//! the TLS files (`ca.pem`, `server.pem`, their keys) and `admin.token`,
//! the first admin's token, written once (mode 0600).

mod api;
mod applier;
mod bootstrap;
mod committed;
pub mod events;
mod grep;
pub mod history;
pub use bootstrap::{write_secret, TOKEN_FILE as ADMIN_TOKEN_FILE};
pub mod auth;
mod link;
mod lock;
mod log_writer;
mod logs;
pub mod tls;
pub mod webhooks;

use kiln_core::farm::{Farm, FarmConfig, Restore};
use kiln_store::{SqliteStore, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] kiln_store::Error),
    #[error("cannot open the store at {path}: {source}; check that the data directory is writable, or choose another with --data")]
    OpenStore {
        path: String,
        source: kiln_store::Error,
    },
    #[error("data directory {dir} is in use by another kiln server (pid {pid}); stop it, or choose another directory with --data")]
    DataDirInUse { dir: String, pid: String },
    #[error("the data directory {dir} cannot be written ({reason}); the server stops rather than acknowledge what is not on disk. Free space or fix its permissions, then start it again")]
    DataDir { dir: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("TLS: {file}: {reason}; fix the file, or remove it from the data directory to have it made again (--tls-cert/--tls-key: use a PEM certificate and its key)")]
    Tls { file: String, reason: String },
    #[error("the applier stopped unexpectedly")]
    ApplierGone,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub farm: FarmConfig,
    pub connections: kiln_proto::conn::ConnLimits,
    pub tls: tls::Tls,
    /// Password sign-in against a directory as well as local users.
    pub ldap: Option<auth::ldap::LdapConfig>,
    /// How long events are kept for clients catching up.
    pub event_retention: std::time::Duration,
    /// How long finished jobs, their history and logs are kept.
    pub retention: Retention,
    /// Serve `/metrics` and `/api/v1/autoscale` without a token (a
    /// scraper on a trusted network); otherwise they need one that may
    /// read the farm.
    pub metrics_public: bool,
    /// How often the farm's gauges are sampled for the web UI's charts
    /// ([`history::DEFAULT_SAMPLE_EVERY`] unless set).
    pub sample_every: std::time::Duration,
}

/// How long the server keeps what finished work leaves behind, so that
/// neither its memory, its database nor its log directory grows forever.
/// `None`: keep forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// A job that finished (or was killed) this long ago leaves memory and
    /// `kiln jobs --all`; its attempts stay readable through history.
    pub archive_after_ms: Option<i64>,
    /// An archived job's records are deleted this long after archiving.
    pub history_ms: Option<i64>,
    /// A frame log is deleted this long after its last write.
    pub logs_ms: Option<i64>,
    /// How often the server applies the above.
    pub every_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: i64 = 86_400_000;
        Retention {
            archive_after_ms: Some(7 * DAY),
            history_ms: Some(365 * DAY),
            logs_ms: Some(30 * DAY),
            every_ms: 60_000,
        }
    }
}

/// How long events are kept when the server is not told otherwise.
pub const DEFAULT_EVENT_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// Milliseconds since the Unix epoch: the server's one clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Every connection is a file descriptor, and the usual soft limit (1,024)
/// is far below what a farm's workers and clients need: raise it to the
/// hard limit, which only the administrator can change.
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return;
    }
    let old = r.rlim_cur;
    if old >= r.rlim_max {
        tracing::info!(limit = old, "open-file limit");
        return;
    }
    r.rlim_cur = r.rlim_max;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
        tracing::info!(
            "raised the open-file limit from {old} to its hard limit {}",
            r.rlim_max
        );
    } else {
        let e = std::io::Error::last_os_error();
        tracing::warn!(
            "open-file limit stays at {old}: cannot raise it to {}: {e}",
            r.rlim_max
        );
    }
}

/// Opens the data directory and serves on `listener` until `shutdown`
/// resolves or the applier fails (a store error: the server stops rather
/// than run on state it could not make durable).
pub async fn serve(
    config: ServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    raise_fd_limit();
    std::fs::create_dir_all(&config.data_dir)?;
    // Held until this function returns: the server's whole life.
    let _lock = lock::lock(&config.data_dir)?;
    let db = config.data_dir.join("kiln.db");
    let store = SqliteStore::open(&db)
        .await
        .map_err(|source| Error::OpenStore {
            path: db.display().to_string(),
            source,
        })?;
    let store = Arc::new(store);
    let mut image = store.load().await?;
    let mut identity = kiln_core::auth::identity::Identity::default();
    for c in std::mem::take(&mut image.identity) {
        identity.apply(c);
    }
    let next_audit = bootstrap::first_admin(
        &config.data_dir,
        &*store,
        &mut identity,
        image.max_ids.audit,
    )
    .await?;
    let gate = auth::edge::Gate::new(identity);
    let ids = image.max_ids;
    let recorder = Arc::new(kiln_api::metrics::Recorder::default());
    let hub = Arc::new(events::Hub::new(ids.event, recorder.clone()));
    let jobs = image.jobs.len();
    let frames = image.frames.len();
    let farm = Farm::restore(
        config.farm.clone(),
        Restore {
            jobs: image.jobs,
            layers: image.layers,
            frames: image.frames,
            hosts: image.hosts,
            running_attempts: image.running_attempts,
            structure: image.structure,
            max_ids: [ids.job, ids.layer, ids.frame, ids.attempt, ids.host],
            event_seq: ids.event,
        },
        now_ms(),
    );
    let tls = tls::prepare(&config.data_dir, &config.tls)?.map(|(cfg, trust)| {
        let what = if trust.own_ca {
            "clients trust the server's CA"
        } else {
            "the server's certificate is"
        };
        tracing::info!(
            "TLS: {what} {} (fingerprint {})",
            trust.file.display(),
            trust.fingerprint
        );
        cfg
    });
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, jobs, frames, data = %config.data_dir.display(), "kiln server ready");

    let logs = Arc::new(logs::LogStore::new(config.data_dir.join("logs"))?);
    let (tx, rx) = mpsc::unbounded_channel();
    let applier = applier::Applier::new(
        farm,
        store.clone(),
        logs.clone(),
        rx,
        gate.clone(),
        next_audit,
    )
    .with_retention(config.retention.clone())
    .events(hub.clone(), config.event_retention)
    .with_recorder(recorder.clone());
    let webhooks =
        webhooks::Webhooks::start(store.clone(), hub.clone(), recorder.clone(), gate.clone())
            .await?;
    let history = Arc::new(history::FarmHistory::new(config.sample_every));
    if let Err(e) = history.restore(&*store).await {
        tracing::warn!("the farm's charts start afresh: cannot read their samples: {e}");
    }
    let api = api::Api {
        webhooks,
        tx: tx.clone(),
        store,
        logs: logs.clone(),
        data_dir: config.data_dir.display().to_string(),
        gate: gate.clone(),
        ldap: config.ldap.clone().map(Arc::new),
        committed: applier.committed(),
        hub,
        recorder,
        metrics_public: config.metrics_public,
        history: history.clone(),
    };
    history::spawn_sampler(
        history,
        applier.committed(),
        config.sample_every,
        api.store.clone(),
    );
    let (fatal, mut failed) = mpsc::unbounded_channel();
    let link = link::Link {
        tx: tx.clone(),
        logs: log_writer::LogWriter::spawn(logs)?,
        next_session: AtomicU64::new(1),
        fatal,
        gate,
    };
    let dir = config.data_dir.display().to_string();
    // Said once, by whoever prints the error the server stops with.
    let data_dir_failed = |reason: String| Error::DataDir {
        dir: dir.clone(),
        reason,
    };
    let mut applier = applier.spawn_thread()?;
    let stopping = Arc::new(tokio::sync::Notify::new());
    let stopping2 = stopping.clone();
    let shutdown = async move {
        shutdown.await;
        // Worker streams never end on their own; end them, or a graceful
        // shutdown would wait for every worker to leave.
        let _ = tx.send(applier::Request::CloseSessions);
        stopping2.notify_one();
    };
    // The web UI in front: `/api/…` and `/metrics` pass through to REST.
    let rest = kiln_ui::router(kiln_rest::router(Arc::new(api.clone())));
    let server = kiln_proto::server::serve(
        listener,
        config.connections.clone(),
        tls,
        api,
        link,
        rest,
        shutdown,
    );
    tokio::select! {
        r = server => r?,
        r = &mut applier => return match r {
            Ok(Ok(())) => Err(Error::ApplierGone),
            // A failed commit: the store is the truth, memory may be ahead.
            Ok(Err(Error::Store(e))) if e.is_disk_failure() => Err(data_dir_failed(e.to_string())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::ApplierGone),
        },
        Some(reason) = failed.recv() => return Err(data_dir_failed(reason)),
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        } => tracing::warn!("clients still connected after 5 s; stopping anyway"),
    }
    Ok(())
}
