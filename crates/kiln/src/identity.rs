//! Who may use the farm: `kiln login`, `logout`, `whoami`, `user`, `grant`,
//! `revoke`, `token` and `audit`.

use crate::fmt;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use kiln_core::auth::audit::AuditQuery;
use kiln_core::auth::identity::{JoinRules, Source};
use kiln_core::auth::views::IdentityCmd;
use kiln_core::auth::{Grant, Right};
use kiln_core::size::parse_duration_s;
use kiln_proto::tls;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

#[derive(Args)]
pub struct LoginArgs {
    /// The server (default: --server / KILN_SERVER).
    url: Option<String>,
    /// The user to sign in as (default: this machine's user name).
    #[arg(long, short)]
    user: Option<String>,
    /// Read the password from the first line of stdin instead of asking.
    #[arg(long)]
    password_stdin: bool,
    /// Keep this API token for the server instead of signing in with a
    /// password (checked first).
    #[arg(long = "with-token", value_name = "TOKEN")]
    with_token: Option<String>,
    /// Trust the server's CA without asking if its fingerprint is this
    /// (`SHA256:…`, as `kiln server` prints it): for scripts. At a terminal
    /// `kiln login` shows the fingerprint and asks instead.
    #[arg(long, value_name = "SHA256:…")]
    fingerprint: Option<String>,
}

#[derive(Args)]
pub struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Make a local user (who signs in with a password or a token).
    Create {
        name: String,
        /// Read its password from the first line of stdin. Otherwise, at a
        /// terminal, it is asked for (empty: none); else the user has none
        /// and signs in with tokens an admin makes for it.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their roles.
    List(JsonArgs),
    /// Stop a user: its tokens stop working at once; its jobs stay.
    Disable { name: String },
    /// Let a disabled user in again.
    Enable { name: String },
    /// Set a local user's password (default: your own), read from stdin.
    Password { name: Option<String> },
}

#[derive(Args)]
pub struct GrantArgs {
    /// viewer, artist, wrangler, admin or impersonate.
    role: String,
    user: String,
    /// Only for this show (default: farm-wide).
    #[arg(long)]
    show: Option<String>,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Make an API token (printed once), or with --worker a join token for
    /// render hosts.
    Create {
        /// What to call it (`laptop`, `nuke-submit`).
        #[arg(long, default_value = "cli")]
        name: String,
        /// Make it for another user (admins only).
        #[arg(long)]
        user: Option<String>,
        /// Let it expire after this long (30d, 12h). Default: never for API
        /// tokens, 24h for join tokens.
        #[arg(long)]
        expires: Option<String>,
        /// A worker join token: `kiln worker --join TOKEN` exchanges it once
        /// per host for the host's own credential.
        #[arg(long)]
        worker: bool,
        /// Join tokens: host names it admits, a glob (`render*`).
        #[arg(long, requires = "worker")]
        hosts: Option<String>,
        /// Join tokens: the address range joining hosts come from.
        #[arg(long, requires = "worker")]
        cidr: Option<String>,
        /// Join tokens: how many hosts may join with it (default: unlimited
        /// until it expires).
        #[arg(long, requires = "worker")]
        uses: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List your tokens (--all: everyone's, and join tokens; admins only).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id or name: it stops working on its next call.
    Revoke {
        /// The token's id (`kiln token list`) or name.
        #[arg(value_name = "TOKEN")]
        id: String,
    },
}

#[derive(Args)]
pub struct AuditArgs {
    /// Only what this user (or `host NAME`) did.
    #[arg(long)]
    user: Option<String>,
    /// Only since then: a duration ago (`1h`, `7d`), or a UTC date and time
    /// (`2026-12-07`, `2026-12-07T09:30:00Z`).
    #[arg(long)]
    since: Option<String>,
    /// At most this many records, newest first.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[arg(long)]
    json: bool,
}

/// A secret from the first line of stdin.
fn stdin_line(what: &str) -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(line)
}

/// Asks on the terminal, without echoing what is typed.
fn ask_hidden(prompt: &str) -> Result<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on: use --password-stdin")?;
    use std::os::fd::AsRawFd;
    let fd = tty.as_raw_fd();
    // SAFETY: termios calls on a terminal we opened; the old settings are
    // put back before returning.
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut old) } != 0 {
        bail!("cannot turn off echo on the terminal: use --password-stdin");
    }
    let mut quiet = old;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut w = &tty;
    let _ = write!(w, "{prompt}");
    let _ = w.flush();
    let mut line = String::new();
    let r = std::io::BufReader::new(&tty).read_line(&mut line);
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn grants_text(grants: &[Grant]) -> String {
    if grants.is_empty() {
        return "no role".into();
    }
    grants
        .iter()
        .map(|g| match &g.show {
            None => g.right.to_string(),
            Some(s) => format!("{} of {s}", g.right),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn grant(a: &GrantArgs) -> Result<Grant> {
    let right = Right::parse(&a.role.to_ascii_lowercase()).with_context(|| {
        format!(
            "role {:?} is not one Kiln has: use viewer, artist, wrangler, admin or impersonate",
            a.role
        )
    })?;
    Ok(Grant {
        right,
        show: a.show.clone(),
    })
}

fn duration_ms(flag: &str, text: &str) -> Result<i64> {
    let s = parse_duration_s(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    if s == 0 {
        bail!("{flag}: give a positive duration such as 30d or 12h");
    }
    Ok(s as i64 * 1000)
}

/// A time in milliseconds as `2026-12-07 09:30:12Z`.
pub fn utc(ms: i64) -> String {
    use time::macros::format_description;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| ms.to_string())
}

/// `--since`: a duration ago, or a UTC date with an optional time.
fn since_ms(text: &str) -> Result<i64> {
    time_ms("--since", text)
}

/// A time given to `flag`: a duration ago, or a UTC date with an optional
/// time.
pub fn time_ms(flag: &str, text: &str) -> Result<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    if let Ok(s) = parse_duration_s(text) {
        return Ok(fmt::now_ms() - s as i64 * 1000);
    }
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Ok(d) = time::Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    bail!("{flag} {text:?}: give a duration ago (1h, 7d) or a UTC date such as 2026-12-07 or 2026-12-07T09:30:00Z")
}

/// Makes sure the server at `url` is one this user trusts before a
/// password or token goes to it: `--ca FILE` as given; a CA stored by an
/// earlier login or the system's roots, if they accept it; else the CA the
/// server presents, once its fingerprint is confirmed (at the terminal, or
/// by `--fingerprint`). Returns the PEM to keep for the server once the
/// login succeeds.
async fn trust_server(
    url: &str,
    ca: Option<&Path>,
    expect: Option<&str>,
) -> Result<Option<Vec<u8>>> {
    if !url.starts_with("https://") {
        return Ok(None);
    }
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("--ca: reading {}", ca.display()))?;
        return Ok(Some(pem));
    }
    match kiln_proto::client::Client::connect(url).await {
        Ok(_) => return Ok(None),
        Err(kiln_proto::Error::Untrusted(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if let Some(old) = tls::pinned_ca_path(url).filter(|p| p.is_file()) {
        eprintln!(
            "WARNING: the server at {url} no longer presents the CA trusted for it in {}: \
             its CA was made again, or this is not the same server. Ask its admin before \
             trusting the new one.",
            old.display()
        );
    }
    let got = tls::fetch_ca(url).await?;
    eprintln!(
        "The server at {url} presents a certificate from {:?} with fingerprint\n  {}\n\
         It is trusted only if that is the fingerprint its `kiln server` printed at start.",
        got.subject, got.fingerprint
    );
    let yes = match expect {
        Some(fp) if tls::same_fingerprint(fp, &got.fingerprint) => true,
        Some(fp) => bail!(
            "--fingerprint {fp} is not the server's: do not log in; check the address, \
             or ask the farm's admin for the fingerprint `kiln server` printed"
        ),
        None if std::io::stdin().is_terminal() => {
            eprint!("Trust it from now on? [y/N] ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
        }
        None => bail!(
            "no terminal to ask whether to trust it: after checking the fingerprint, run \
             `kiln login {url} --fingerprint {}`, or pass --ca FILE (ca.pem from the server's \
             data directory)",
            got.fingerprint
        ),
    };
    if !yes {
        bail!("not trusted: nothing was stored and no password was sent");
    }
    let file = tls::save_trusted_ca(url, &got.pem)?;
    eprintln!("trusted; its CA is kept in {}", file.display());
    Ok(None)
}

pub async fn login(a: LoginArgs, server: &str, ca: Option<&Path>) -> Result<ExitCode> {
    let url = kiln_proto::client::normalize_url(a.url.as_deref().unwrap_or(server));
    kiln_proto::client::check_url(&url)?;
    let keep_ca = trust_server(&url, ca, a.fingerprint.as_deref()).await?;
    let token = match a.with_token {
        Some(t) => t.trim().to_string(),
        None => {
            let user = match a.user {
                Some(u) => u,
                None if a.password_stdin || !std::io::stdin().is_terminal() => crate::os_user(),
                None => {
                    let me = crate::os_user();
                    eprint!("user [{me}]: ");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    let line = line.trim();
                    if line.is_empty() {
                        me
                    } else {
                        line.to_string()
                    }
                }
            };
            let password = if a.password_stdin {
                stdin_line("password")?
            } else {
                ask_hidden(&format!("password for {user} at {url}: "))?
            };
            let client = kiln_proto::client::Client::connect(&url).await?;
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            let name = format!("login-{}", host.trim());
            client.login(&user, &password, Some(&name)).await?.token
        }
    };
    let client = kiln_proto::client::Client::connect_as(&url, Some(&token)).await?;
    let me = client.whoami().await?;
    let kept = crate::session::save_token(&url, &token)?;
    if let Some(pem) = keep_ca {
        let file = tls::save_trusted_ca(&url, &pem)?;
        eprintln!("the CA from --ca is kept for {url} in {}", file.display());
    }
    println!(
        "logged in to {url} as {} ({}); the token is in {}",
        me.user,
        grants_text(&me.grants),
        kept.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(url: Option<String>, server: &str) -> Result<ExitCode> {
    let url = kiln_proto::client::normalize_url(url.as_deref().unwrap_or(server));
    let Some(token) = crate::session::token(&url) else {
        println!("not logged in to {url}");
        return Ok(ExitCode::SUCCESS);
    };
    // The session's id is the token's second word: revoke it server-side
    // too, so a copy of the file is worth nothing.
    if let Some(id) = token.split('_').nth(2) {
        if let Ok(c) = crate::session::connect(&url).await {
            let _ = c.identity(IdentityCmd::RevokeToken(id.to_string())).await;
        }
    }
    crate::session::forget_token(&url);
    println!("logged out of {url}");
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(a: JsonArgs, server: &str) -> Result<ExitCode> {
    let me = crate::session::connect(server).await?.whoami().await?;
    if a.json {
        fmt::json(&me)?;
    } else {
        let via = match me.source {
            Source::Local => "",
            Source::Ldap => " (directory)",
        };
        println!("{}{via}: {}", me.user, grants_text(&me.grants));
    }
    Ok(ExitCode::SUCCESS)
}

async fn change(server: &str, cmd: IdentityCmd) -> Result<ExitCode> {
    let done = crate::session::connect(server).await?.identity(cmd).await?;
    println!("{}", done.message);
    Ok(ExitCode::SUCCESS)
}

pub async fn user(cmd: UserCmd, server: &str) -> Result<ExitCode> {
    match cmd {
        UserCmd::Create {
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(stdin_line("password")?)
            } else if std::io::stdin().is_terminal() {
                // At a terminal: ask, twice; empty makes a token-only user.
                let first = ask_hidden(&format!(
                    "password for {name} (empty: none; {name} then signs in with tokens): "
                ))?;
                if first.is_empty() {
                    None
                } else {
                    if ask_hidden("again: ")? != first {
                        bail!("the two passwords differ: nothing was made; run it again");
                    }
                    Some(first)
                }
            } else {
                None
            };
            change(server, IdentityCmd::CreateUser { name, password }).await
        }
        UserCmd::Disable { name } => {
            change(
                server,
                IdentityCmd::SetDisabled {
                    name,
                    disabled: true,
                },
            )
            .await
        }
        UserCmd::Enable { name } => {
            change(
                server,
                IdentityCmd::SetDisabled {
                    name,
                    disabled: false,
                },
            )
            .await
        }
        UserCmd::Password { name } => {
            let client = crate::session::connect(server).await?;
            let user = match name {
                Some(n) => n,
                None => client.whoami().await?.user,
            };
            let password = if std::io::stdin().is_terminal() {
                ask_hidden(&format!("new password for {user}: "))?
            } else {
                stdin_line("password")?
            };
            let done = client
                .identity(IdentityCmd::SetPassword { user, password })
                .await?;
            println!("{}", done.message);
            Ok(ExitCode::SUCCESS)
        }
        UserCmd::List(a) => {
            let users = crate::session::connect(server).await?.users().await?;
            if a.json {
                fmt::json(&users)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = fmt::table(&["USER", "ROLES", "SIGNS IN", "STATE", "CREATED"]);
            for u in &users {
                let how = match (u.source, u.has_password) {
                    (Source::Ldap, _) => "directory",
                    (Source::Local, true) => "password, token",
                    (Source::Local, false) => "token",
                };
                t.add_row(vec![
                    u.name.clone(),
                    grants_text(&u.grants),
                    how.to_string(),
                    if u.disabled { "disabled" } else { "active" }.into(),
                    fmt::ago(u.created_at),
                ]);
            }
            fmt::print_table(&t);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn grant_cmd(a: GrantArgs, revoke: bool, server: &str) -> Result<ExitCode> {
    let g = grant(&a)?;
    let user = a.user;
    let cmd = if revoke {
        IdentityCmd::Revoke { user, grant: g }
    } else {
        IdentityCmd::Grant { user, grant: g }
    };
    change(server, cmd).await
}

pub async fn token(cmd: TokenCmd, server: &str) -> Result<ExitCode> {
    let client = crate::session::connect(server).await?;
    match cmd {
        TokenCmd::Create {
            name,
            user,
            expires,
            worker,
            hosts,
            cidr,
            uses,
            json,
        } => {
            let expires = match (expires, worker) {
                (Some(e), _) => Some(duration_ms("--expires", &e)?),
                (None, true) => Some(86_400_000),
                (None, false) => None,
            };
            let join = worker.then_some(JoinRules {
                hosts,
                cidr,
                uses_left: uses,
            });
            let done = client
                .identity(IdentityCmd::CreateToken {
                    name,
                    user,
                    expires_in: expires,
                    join,
                })
                .await?;
            if json {
                fmt::json(&done)?;
                return Ok(ExitCode::SUCCESS);
            }
            let token = done.token.unwrap_or_default();
            eprintln!("{} (shown once: keep it now)", done.message);
            println!("{token}");
            if worker {
                let url = kiln_proto::client::normalize_url(server);
                let pin = tls::trusted_ca_file(&url)
                    .and_then(|f| tls::file_fingerprint(&f).ok())
                    .map_or(String::new(), |fp| format!(" --fingerprint {fp}"));
                eprintln!("on each render host: kiln worker --server {url} --join {token}{pin}");
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::List { all, json } => {
            let tokens = client.tokens(all).await?;
            if json {
                fmt::json(&tokens)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = fmt::table(&["ID", "NAME", "USER", "KIND", "CREATED", "EXPIRES", "RULES"]);
            for k in &tokens {
                let rules = k.join.as_ref().map_or(String::new(), |r| {
                    let mut v = Vec::new();
                    if let Some(h) = &r.hosts {
                        v.push(format!("hosts {h}"));
                    }
                    if let Some(c) = &r.cidr {
                        v.push(format!("from {c}"));
                    }
                    v.push(match r.uses_left {
                        Some(n) => format!("{n} use(s) left"),
                        None => "unlimited uses".into(),
                    });
                    v.join(", ")
                });
                t.add_row(vec![
                    k.id.clone(),
                    k.name.clone(),
                    k.user.clone(),
                    k.kind.clone(),
                    fmt::ago(k.created_at),
                    k.expires_at.map_or("never".into(), utc),
                    rules,
                ]);
            }
            fmt::print_table(&t);
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::Revoke { id } => {
            let done = client.identity(IdentityCmd::RevokeToken(id)).await?;
            println!("{}", done.message);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn audit(a: AuditArgs, server: &str) -> Result<ExitCode> {
    let q = AuditQuery {
        who: a.user,
        since: a.since.as_deref().map(since_ms).transpose()?,
        limit: a.limit,
    };
    let records = crate::session::connect(server).await?.audit(&q).await?;
    if a.json {
        fmt::json(&records)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = fmt::table(&["WHEN (UTC)", "WHO", "FROM", "ACTION", "TARGET", "OUTCOME"]);
    for r in &records {
        t.add_row(vec![
            utc(r.at),
            r.who.clone(),
            r.from.clone(),
            r.action.clone(),
            r.target.clone(),
            r.outcome.clone(),
        ]);
    }
    fmt::print_table(&t);
    Ok(ExitCode::SUCCESS)
}
