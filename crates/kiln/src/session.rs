//! Who the CLI is on each server: the token it presents (`--token` /
//! `KILN_TOKEN`, else the one `kiln login` or `kiln up` stored for that
//! server under `~/.config/kiln/tokens/`), and one way to connect with it.

use anyhow::{Context, Result};
use kiln_proto::client::Client;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The token given on the command line or in the environment.
static EXPLICIT: OnceLock<String> = OnceLock::new();

pub fn init(token: Option<String>) {
    if let Some(t) = token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        let _ = EXPLICIT.set(t);
    }
}

/// `~/.config/kiln` (or `$XDG_CONFIG_HOME/kiln`).
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("kiln"))
}

/// `host_port` of a server URL, as the stored files are named.
pub fn url_key(url: &str) -> String {
    let url = kiln_proto::client::normalize_url(url);
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p.to_string()),
        _ => (
            authority,
            if url.starts_with("https") {
                "443"
            } else {
                "80"
            }
            .to_string(),
        ),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    format!("{host}_{port}")
}

fn token_file(url: &str) -> Option<PathBuf> {
    config_dir().map(|d| d.join("tokens").join(url_key(url)))
}

/// The token this CLI presents to `url`, if it has one.
pub fn token(url: &str) -> Option<String> {
    if let Some(t) = EXPLICIT.get() {
        return Some(t.clone());
    }
    let text = std::fs::read_to_string(token_file(url)?).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Keeps `token` for `url`, readable by this user only.
pub fn save_token(url: &str, token: &str) -> Result<PathBuf> {
    let path = token_file(url).context("no home directory to keep the token in: set HOME")?;
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    kiln_server::write_secret(&path, &format!("{}\n", token.trim()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Forgets the token stored for `url`; whether there was one.
pub fn forget_token(url: &str) -> bool {
    token_file(url).is_some_and(|p| std::fs::remove_file(p).is_ok())
}

/// A client for `url` presenting this CLI's token there.
pub async fn connect(url: &str) -> Result<Client, kiln_proto::Error> {
    Client::connect_as(url, token(url).as_deref()).await
}

/// The line the CLI prints for a call the server would not authenticate.
pub fn not_logged_in(url: &str, said: &str) -> String {
    let url = kiln_proto::client::normalize_url(url);
    format!("not logged in to {url}: run `kiln login {url}` ({said})")
}
