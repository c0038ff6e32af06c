//! The CAs a user trusts, one per server: `kiln login` stores the one it
//! fetched (or was given) where every later connection to that server
//! looks first, after `--ca`/`KILN_CA`.

use crate::{Error, Result};
use std::io::Write;
use std::path::PathBuf;

/// The host (without brackets, lower case) and port of an `https://`
/// URL; a URL without a scheme is taken as https.
pub(crate) fn https_target(url: &str) -> Result<(String, u16)> {
    let url = url.trim().trim_end_matches('/');
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    let bad =
        |why: String| Error::Invalid(format!("{url:?} {why}: write it like https://farm:7676"));
    let uri: tonic::codegen::http::Uri = full
        .parse()
        .map_err(|e| bad(format!("is not a server address ({e})")))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            return Err(bad(
                "is a plaintext server address, which has no certificate to trust".into(),
            ))
        }
        _ => return Err(bad("is not a server address".into())),
    }
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("names no host".into()))?;
    Ok((host.to_ascii_lowercase(), uri.port_u16().unwrap_or(443)))
}

/// `$XDG_CONFIG_HOME/kiln/ca/<host>_<port>.pem`, else the same under
/// `~/.config`: where the CA for one server is kept.
pub(crate) fn pin_file(host: &str, port: u16) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(base.join(format!("kiln/ca/{}_{port}.pem", host.to_ascii_lowercase())))
}

/// Where the CA trusted for the server at `url` is kept, whether or not
/// one is there yet. `None` when `url` is not an https one or there is
/// no home to keep it in (neither `XDG_CONFIG_HOME` nor `HOME` is set).
pub fn pinned_ca_path(url: &str) -> Option<PathBuf> {
    let (host, port) = https_target(url).ok()?;
    pin_file(&host, port)
}

/// Trusts the CA certificate(s) in `pem` for the server at `url` from now
/// on: writes them to [`pinned_ca_path`], whole or not at all, making its
/// directories. Returns the file.
pub fn save_trusted_ca(url: &str, pem: &[u8]) -> Result<PathBuf> {
    let (host, port) = https_target(url)?;
    super::pem_certificates(pem, "the CA to trust")?;
    let file = pin_file(&host, port).ok_or_else(|| {
        Error::Invalid(
            "neither XDG_CONFIG_HOME nor HOME is set, so there is nowhere to keep the CA: \
             pass --ca FILE (or KILN_CA) instead"
                .into(),
        )
    })?;
    let fail = |e: std::io::Error| {
        Error::Invalid(format!("cannot write the CA to {}: {e}", file.display()))
    };
    let dir = file.parent().expect("the file is in kiln/ca");
    std::fs::create_dir_all(dir).map_err(fail)?;
    let tmp = file.with_extension(format!("pem.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(pem)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &file)?;
        // The rename lasts once the directory is on disk.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_one_server() {
        for (url, host, port) in [
            ("https://Farm.example:7676", "farm.example", 7676),
            ("https://farm.example:7676/", "farm.example", 7676),
            ("farm:7676", "farm", 7676),
            ("https://farm", "farm", 443),
            ("https://[::1]:7676", "::1", 7676),
        ] {
            assert_eq!(
                https_target(url).unwrap(),
                (host.to_string(), port),
                "{url}"
            );
        }
        for url in [
            "http://127.0.0.1:7676",
            "ftp://farm:21",
            "https://:7676",
            "not a url",
        ] {
            assert!(matches!(https_target(url), Err(Error::Invalid(_))), "{url}");
        }
    }
}
