//! `kiln`: the server, the worker daemon and the command-line client in one
//! binary. This file is the command-line surface; each group of commands
//! lives in its own module.

mod actions;
mod alloc;
mod events;
mod fleet;
mod fmt;
mod grep;
mod history;
mod identity;
mod job;
mod ldap;
mod local;
mod parse;
mod probe;
mod probe_sse;
mod service;
mod session;
mod show;
mod simulate;
mod structure;
mod submit;
mod webhook;
mod wrangle;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7676";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7676";

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Kiln: a render farm manager (server, worker daemon and CLI in one binary)",
    after_help = "Quick start: `kiln up --submit examples/fractal/job.yaml` starts a local farm and renders a sample job.\n\
                  Docs: docs/ in the source tree."
)]
struct Cli {
    /// The server to talk to.
    #[arg(long, global = true, env = "KILN_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// The CA certificate (PEM) that signed the server's: a server with its
    /// own CA has it in its data directory as ca.pem. Default: the one
    /// `kiln login` stored for the server, else the system's roots.
    #[arg(long, global = true, env = "KILN_CA")]
    ca: Option<PathBuf>,
    /// The token to present (kiln_api_…). Default: the one `kiln login`
    /// stored for the server (`kiln up` stores one for its local farm).
    #[arg(long, global = true, env = "KILN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once per process and matched at once: the size of the largest
// variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Start a local farm: a server and one worker on this machine.
    Up(local::UpArgs),
    /// Run the server (SQLite store and logs in --data).
    Server(local::ServerArgs),
    /// Run a worker daemon on a render host; it connects out to --server.
    Worker(local::WorkerArgs),
    /// Submit a job spec or an OpenJD job template (YAML or JSON).
    Submit(submit::SubmitArgs),
    /// List jobs (unfinished ones unless --all).
    Jobs(show::JobsArgs),
    /// Show a job: its layers, their frames by state and why frames wait.
    /// `kiln job set|unavoid` change a job.
    Job(job::JobArgs),
    /// List a job's frames.
    Frames(show::FramesArgs),
    /// Print a frame's log (--follow to keep reading while it runs).
    Log(show::LogArgs),
    /// Search a job's logs (the latest attempt of each frame) for a regular
    /// expression; each line comes with its frame and line number.
    Grep(grep::GrepArgs),
    /// Every ended attempt (host, times, memory, CPU, exit, why) as a table,
    /// CSV or JSON lines: `--format csv > history.csv` for pandas.
    History(history::HistoryArgs),
    /// The farm's events (job.finished, frame.failed, host.down, ...) as a
    /// table or JSON lines; --follow keeps streaming, resuming by itself.
    Events(events::EventsArgs),
    /// Kill a job, or some of its layers or frames (frames become DEAD).
    Kill(actions::ActArgs),
    /// Pause a job or some of its layers: nothing new starts.
    Pause(actions::ActArgs),
    /// Resume a paused job or layers.
    Resume(actions::ActArgs),
    /// Requeue frames (by default the DEAD ones).
    Retry(actions::ActArgs),
    /// Mark frames done without running them.
    Eat(actions::ActArgs),
    /// List render hosts.
    Hosts(show::HostsArgs),
    /// Change a host: lock, unlock, move, tag, untag, repair, fixed.
    Host {
        #[command(subcommand)]
        command: actions::HostCmd,
    },
    /// List facilities (sites).
    Facilities(structure::ListArgs),
    /// Create or remove a facility.
    Facility {
        #[command(subcommand)]
        command: wrangle::FacilityCmd,
    },
    /// List allocations (pools of hosts) with their hosts and cores.
    Allocs(structure::ListArgs),
    /// Create, retag or remove an allocation.
    Alloc {
        #[command(subcommand)]
        command: wrangle::AllocCmd,
    },
    /// List shows with their defaults, cores in use and subscriptions.
    Shows(structure::ListArgs),
    /// Create a show, or enable, disable or change one.
    Show {
        #[command(subcommand)]
        command: wrangle::ShowCmd,
    },
    /// List subscriptions: each show's share of each allocation.
    Subs(structure::SubsArgs),
    /// Set or remove a show's subscription to an allocation.
    Sub {
        #[command(subcommand)]
        command: wrangle::SubCmd,
    },
    /// List limits (license counters) with how many are in use.
    Limits(structure::ListArgs),
    /// Set or remove a limit.
    Limit {
        #[command(subcommand)]
        command: wrangle::LimitCmd,
    },
    /// List services (named layer defaults).
    Services(structure::ListArgs),
    /// Set or remove a service.
    Service {
        #[command(subcommand)]
        command: service::ServiceCmd,
    },
    /// Sign in to a server: checks its certificate, asks for a password
    /// (or takes --with-token) and keeps a token under ~/.config/kiln.
    Login(identity::LoginArgs),
    /// Forget (and revoke) the token kept for a server.
    Logout {
        /// The server (default: --server).
        url: Option<String>,
    },
    /// Who you are on the server, and your roles.
    Whoami(identity::JsonArgs),
    /// Users: create, list, disable, enable, password.
    User {
        #[command(subcommand)]
        command: identity::UserCmd,
    },
    /// Give a user a role, farm-wide or (--show) for one show.
    Grant(identity::GrantArgs),
    /// Take a role away.
    Revoke(identity::GrantArgs),
    /// API tokens and worker join tokens.
    Token {
        #[command(subcommand)]
        command: identity::TokenCmd,
    },
    /// The audit trail: who changed what, from where, when, and the outcome.
    Audit(identity::AuditArgs),
    /// Webhooks: the farm's events POSTed to a URL, signed, at least once.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCmd,
    },
    /// Load test: simulate N workers that run frames by waiting.
    Fleet(fleet::FleetArgs),
    /// Read load test: one kind of read back to back; prints each read's
    /// start and latency (bench/reads.sh).
    #[command(hide = true)]
    Probe(probe::ProbeArgs),
    /// Run the scheduler in virtual time over a scenario (sim/*.yaml) and
    /// report utilisation, shares, waits and planning times.
    Simulate(simulate::SimulateArgs),
}

fn main() -> ExitCode {
    // A frame's supervisor, started by the worker: no CLI, no runtime.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "frame-shim") {
        return ExitCode::from(kiln_worker::runner::shim_main(args) as u8);
    }
    // A command whose reader went away (`kiln frames 1 | head`) ends
    // quietly, as Unix tools do, instead of panicking in println!. Daemons
    // keep ignoring the signal: a closed socket or frame pipe is an error
    // they handle. SAFETY: no other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let is_worker = matches!(cli.command, Cmd::Worker(_));
    if matches!(
        cli.command,
        Cmd::Up(_) | Cmd::Server(_) | Cmd::Worker(_) | Cmd::Fleet(_)
    ) {
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }
    // The worker is a small daemon: one thread keeps its memory low. The
    // server and the CLI use the multi-threaded runtime.
    let rt = if is_worker {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = cli.server.clone();
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<kiln_proto::Error>() {
                Some(kiln_proto::Error::Unauthenticated(m)) => {
                    eprintln!("error: {}", session::not_logged_in(&server, m))
                }
                _ => eprintln!("error: {}", error_text(&e)),
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes whose text the
/// message already carries (library errors often embed their source).
fn error_text(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let server = cli.server;
    let ca = cli.ca;
    if let Some(ca) = &ca {
        kiln_proto::tls::trust_ca_file(ca.clone());
    }
    session::init(cli.token);
    match cli.command {
        Cmd::Up(a) => local::up(a).await,
        Cmd::Server(a) => local::server(a).await,
        Cmd::Worker(a) => local::worker(a, &server, ca.as_deref()).await,
        Cmd::Submit(a) => submit::submit(a, &server).await,
        Cmd::Jobs(a) => show::jobs(a, &server).await,
        Cmd::Job(a) => job::job(a, &server).await,
        Cmd::Frames(a) => show::frames(a, &server).await,
        Cmd::Log(a) => show::log(a, &server).await,
        Cmd::Grep(a) => grep::grep(a, &server).await,
        Cmd::History(a) => history::history(a, &server).await,
        Cmd::Events(a) => events::events(a, &server).await,
        Cmd::Kill(a) => actions::act("kill", a, &server).await,
        Cmd::Pause(a) => actions::act("pause", a, &server).await,
        Cmd::Resume(a) => actions::act("resume", a, &server).await,
        Cmd::Retry(a) => actions::act("retry", a, &server).await,
        Cmd::Eat(a) => actions::act("eat", a, &server).await,
        Cmd::Hosts(a) => show::hosts(a, &server).await,
        Cmd::Host { command } => actions::host(command, &server).await,
        Cmd::Facilities(a) => structure::facilities(a, &server).await,
        Cmd::Facility { command } => wrangle::facility(command, &server).await,
        Cmd::Allocs(a) => structure::allocations(a, &server).await,
        Cmd::Alloc { command } => wrangle::alloc(command, &server).await,
        Cmd::Shows(a) => structure::shows(a, &server).await,
        Cmd::Show { command } => wrangle::show(command, &server).await,
        Cmd::Subs(a) => structure::subscriptions(a, &server).await,
        Cmd::Sub { command } => wrangle::sub(command, &server).await,
        Cmd::Limits(a) => structure::limits(a, &server).await,
        Cmd::Limit { command } => wrangle::limit(command, &server).await,
        Cmd::Services(a) => structure::services(a, &server).await,
        Cmd::Service { command } => service::service(command, &server).await,
        Cmd::Login(a) => identity::login(a, &server, ca.as_deref()).await,
        Cmd::Logout { url } => identity::logout(url, &server).await,
        Cmd::Whoami(a) => identity::whoami(a, &server).await,
        Cmd::User { command } => identity::user(command, &server).await,
        Cmd::Grant(a) => identity::grant_cmd(a, false, &server).await,
        Cmd::Revoke(a) => identity::grant_cmd(a, true, &server).await,
        Cmd::Token { command } => identity::token(command, &server).await,
        Cmd::Audit(a) => identity::audit(a, &server).await,
        Cmd::Webhook { command } => webhook::webhook(command, &server).await,
        Cmd::Fleet(a) => fleet::fleet(a, &server).await,
        Cmd::Probe(a) => probe::probe(a, &server).await,
        Cmd::Simulate(a) => simulate::simulate(a).map(|()| ExitCode::SUCCESS),
    }
}

/// The default data directory: `$KILN_DATA`, else `~/.local/share/kiln`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_DATA") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kiln")
}

/// The OS user running this command.
pub fn os_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately and call nothing in between.
    let from_passwd = unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            None
        } else {
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_str()
                .ok()
                .map(str::to_string)
        }
    };
    from_passwd
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}
