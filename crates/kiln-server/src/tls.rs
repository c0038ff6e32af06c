//! The server's certificate: the administrator's (`--tls-cert`/`--tls-key`),
//! or one signed by a CA of the server's own, made on first start in the
//! data directory (`ca.pem`, `ca.key`, `server.pem`, `server.key`). The CA
//! stays (ten years); the server certificate (397 days, the most browsers
//! accept) is made again, from the same CA, when the names it must carry
//! change or it has less than 30 days left, so clients that trust the CA
//! keep working. The server presents its chain, the CA included, so a
//! client fetching it on first use (`kiln login`) gets the CA.

use crate::Error;
use kiln_proto::tls::{cert_info, pem_certificates, CertInfo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DAY: i64 = 86_400;
/// The own CA's lifetime: ten years.
const CA_DAYS: i64 = 3_652;
/// The server certificate's: the most browsers accept (the web UI).
const SERVER_DAYS: i64 = 397;
/// A certificate with less left than this is made again (own CA) or
/// warned about (the administrator's).
const RENEW_WITHIN: i64 = 30 * DAY;
/// A CA with less left than this is warned about at every start.
const CA_WARN_WITHIN: i64 = 90 * DAY;
/// Certificates start this much before they are made, so a machine whose
/// clock is a little behind does not find them not yet valid.
const BACKDATE: i64 = 3_600;

/// How the server speaks on its port.
#[derive(Debug, Clone)]
pub enum Tls {
    /// No TLS: only for loopback (`--plaintext`; the caller checks).
    Plaintext,
    /// A certificate from the server's own CA for these names, besides
    /// localhost, the loopback addresses and the machine's hostname.
    OwnCa { names: Vec<String> },
    /// The administrator's certificate (chain) and key, PEM.
    Files { cert: PathBuf, key: PathBuf },
}

/// What clients trust, to be said once at startup.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The CA certificate clients pass as `--ca` (own CA), or the
    /// administrator's certificate file.
    pub file: PathBuf,
    /// SHA-256 of its last certificate's DER (the one a client fetching
    /// the chain trusts, `kiln login`), as `SHA256:AB:CD:...`.
    pub fingerprint: String,
    /// Whether `file` is the server's own CA.
    pub own_ca: bool,
}

/// The rustls configuration for `tls`, making the CA and certificate in
/// `dir` when they are missing, name the wrong hosts or run out soon.
/// An administrator's certificate that has expired is refused.
pub fn prepare(dir: &Path, tls: &Tls) -> Result<Option<(Arc<rustls::ServerConfig>, Trust)>, Error> {
    let now = now();
    let (cert, key, trust) = match tls {
        Tls::Plaintext => return Ok(None),
        Tls::Files { cert, key } => {
            let c = read(cert)?;
            let k = read(key)?;
            check_lifetime(cert, &c, now)?;
            let trust = Trust {
                fingerprint: fingerprint(&c).unwrap_or_else(|| "?".into()),
                file: cert.clone(),
                own_ca: false,
            };
            (c, k, trust)
        }
        Tls::OwnCa { names } => own_ca(dir, names, now)?,
    };
    let config = kiln_proto::tls::server_config(&cert, &key).map_err(|e| Error::Tls {
        file: trust.file.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(Some((config, trust)))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Tls {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// `SHA256:AB:CD:...` of the last certificate in `pem`: the one a client
/// that fetches the chain trusts, so what `kiln login` shows.
pub fn fingerprint(pem: &[u8]) -> Option<String> {
    let certs = pem_certificates(pem, "").ok()?;
    Some(kiln_proto::tls::fingerprint(certs.last()?))
}

/// What the first certificate in `pem` says of itself.
fn first_info(pem: &[u8]) -> Option<CertInfo> {
    cert_info(pem_certificates(pem, "").ok()?.first()?).ok()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2027-01-08`.
fn day(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_or_else(|_| format!("{unix}s after 1970"), |t| t.date().to_string())
}

/// Makes `p` valid for `days` from about `now`.
fn valid_for(p: &mut CertificateParams, now: i64, days: i64) {
    let at = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s).expect("a time within a few years of now")
    };
    p.not_before = at(now - BACKDATE);
    p.not_after = at(now - BACKDATE + days * DAY);
}

/// Refuses the administrator's certificate when it has expired, and warns
/// when it has less than 30 days left. One that cannot be read is left to
/// rustls to judge.
fn check_lifetime(file: &Path, pem: &[u8], now: i64) -> Result<(), Error> {
    let Some(info) = first_info(pem) else {
        return Ok(());
    };
    let file = file.display().to_string();
    if info.not_after <= now {
        return Err(Error::Tls {
            file,
            reason: format!(
                "the certificate expired on {}: renew it (or start without --tls-cert and \
                 --tls-key to use a CA of the server's own)",
                day(info.not_after)
            ),
        });
    }
    if info.not_after - now < RENEW_WITHIN {
        tracing::warn!(
            "the TLS certificate {file} expires on {}, in {} days: renew it and restart the \
             server before then, or clients will refuse it",
            day(info.not_after),
            (info.not_after - now) / DAY
        );
    }
    Ok(())
}

/// The CA's own parameters: the same at every start, so a CA read back
/// from its files signs certificates that chain to it.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Kiln server CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// Every name the server certificate carries, sorted: what decides
/// whether it must be made again.
fn wanted_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(h) = hostname() {
        names.push(h);
    }
    names.extend(extra.iter().map(|n| n.trim().to_string()));
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

fn rc(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::Tls {
        file: what.to_string(),
        reason: e.to_string(),
    }
}

fn own_ca(dir: &Path, extra: &[String], now: i64) -> Result<(Vec<u8>, Vec<u8>, Trust), Error> {
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (srv_pem, srv_key, srv_names) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("server.names"),
    );
    let ca_file = ca_pem.display().to_string();
    let made_ca = match (ca_pem.is_file(), ca_key.is_file()) {
        (true, true) => false,
        (false, false) => true,
        // A new CA would silently cut off every client that trusts the old.
        _ => {
            return Err(Error::Tls {
                file: ca_file,
                reason: "ca.pem and ca.key go together, and one is missing: restore it, or \
                         remove both to have a new CA made (clients then need the new ca.pem)"
                    .into(),
            })
        }
    };
    if made_ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc(&ca_file))?;
        let mut p = ca_params();
        valid_for(&mut p, now, CA_DAYS);
        let cert = p.self_signed(&key).map_err(rc(&ca_file))?;
        // The key first: a CA certificate without its key is useless.
        write_atomic(&ca_key, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&ca_pem, cert.pem().as_bytes(), 0o644)?;
        tracing::info!("made a new CA for this server: {ca_file}");
    }
    let ca_cert = read(&ca_pem)?;
    let ca = first_info(&ca_cert).ok_or_else(|| Error::Tls {
        file: ca_file.clone(),
        reason: "holds no certificate that can be read".into(),
    })?;
    if ca.not_after - now < CA_WARN_WITHIN {
        let when = match ca.not_after <= now {
            true => "expired on",
            false => "expires on",
        };
        tracing::warn!(
            "the server's CA {ca_file} {when} {}: stop the server, move ca.pem and ca.key \
             aside and start it again to have a new CA made (valid ten years), then give \
             clients and workers the new ca.pem (`kiln login` again, or --ca)",
            day(ca.not_after)
        );
    }

    let names = wanted_names(extra);
    let listed = names.join("\n") + "\n";
    let reason = if made_ca {
        Some("a new CA".to_string())
    } else if !srv_pem.is_file() || !srv_key.is_file() {
        Some("there was none".to_string())
    } else if !std::fs::read_to_string(&srv_names).is_ok_and(|n| n == listed) {
        Some("its names changed".to_string())
    } else {
        match first_info(&read(&srv_pem)?) {
            None => Some("the old one cannot be read".to_string()),
            Some(old) if old.not_after - now < RENEW_WITHIN => {
                Some(format!("the old one expires on {}", day(old.not_after)))
            }
            Some(_) => None,
        }
    };
    if let Some(reason) = reason {
        // Gone until the new certificate and key are both written, so a
        // crash between them makes them again at the next start.
        let _ = std::fs::remove_file(&srv_names);
        let ca_key_pem = std::fs::read_to_string(&ca_key).map_err(|e| Error::Tls {
            file: ca_key.display().to_string(),
            reason: e.to_string(),
        })?;
        let signer = KeyPair::from_pem(&ca_key_pem).map_err(rc(&ca_file))?;
        let issuer = Issuer::new(ca_params(), signer);
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kiln server");
        p.distinguished_name = dn;
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(rc("--tls-name"))?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        valid_for(&mut p, now, SERVER_DAYS);
        let until = day(now - BACKDATE + SERVER_DAYS * DAY);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc(&ca_file))?;
        let cert = p.signed_by(&key, &issuer).map_err(rc(&ca_file))?;
        write_atomic(&srv_key, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&srv_pem, cert.pem().as_bytes(), 0o644)?;
        write_atomic(&srv_names, listed.as_bytes(), 0o644)?;
        tracing::info!(
            names = %names.join(", "),
            "made a server certificate from the CA, valid until {until}: {reason}"
        );
    }
    let trust = Trust {
        fingerprint: fingerprint(&ca_cert).unwrap_or_else(|| "?".into()),
        file: ca_pem,
        own_ca: true,
    };
    // The chain: the server's certificate, then the CA, so a client that
    // fetches it on first use finds the CA at its end.
    let mut chain = read(&srv_pem)?;
    if !chain.ends_with(b"\n") {
        chain.push(b'\n');
    }
    chain.extend_from_slice(&ca_cert);
    Ok((chain, read(&srv_key)?, trust))
}

/// Writes `path` whole or not at all: a temporary file made with `mode`
/// (so a key is never readable by others, not even empty), synced, then
/// renamed over it.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Tls {
        file: path.display().to_string(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_stays_and_the_certificate_follows_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let own = |names: &[&str]| Tls::OwnCa {
            names: names.iter().map(|s| s.to_string()).collect(),
        };
        let (_, first) = prepare(dir.path(), &own(&[])).unwrap().unwrap();
        for (f, mode) in [("ca.key", 0o600), ("server.key", 0o600), ("ca.pem", 0o644)] {
            let m = std::fs::metadata(dir.path().join(f)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, mode, "{f}");
        }
        let cert = std::fs::read(dir.path().join("server.pem")).unwrap();
        prepare(dir.path(), &own(&[])).unwrap();
        assert_eq!(std::fs::read(dir.path().join("server.pem")).unwrap(), cert);
        let (_, again) = prepare(dir.path(), &own(&["farm.example", "10.0.0.5"]))
            .unwrap()
            .unwrap();
        assert_eq!(again.fingerprint, first.fingerprint, "the CA stays");
        assert_ne!(std::fs::read(dir.path().join("server.pem")).unwrap(), cert);
        assert!(first.fingerprint.starts_with("SHA256:"));
        assert_eq!(first.fingerprint.len(), 7 + 32 * 3 - 1);

        // Half a CA is not replaced by a new one.
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        let e = prepare(dir.path(), &own(&[])).unwrap_err().to_string();
        assert!(e.contains("ca.pem and ca.key go together"), "{e}");
        assert_eq!(
            fingerprint(&std::fs::read(dir.path().join("ca.pem")).unwrap()),
            Some(first.fingerprint)
        );
    }

    fn der_chain(pem: &[u8]) -> Vec<Vec<u8>> {
        pem_certificates(pem, "the chain").unwrap()
    }

    fn info(file: &Path) -> CertInfo {
        first_info(&std::fs::read(file).unwrap()).unwrap()
    }

    #[test]
    fn the_chain_ends_with_the_ca_and_the_certificate_is_made_again_before_it_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let (srv, ca) = (dir.path().join("server.pem"), dir.path().join("ca.pem"));
        let now = now();
        let (chain, _, _) = own_ca(dir.path(), &[], now).unwrap();
        let chain = der_chain(&chain);
        assert_eq!(chain.len(), 2, "the server's certificate, then the CA");
        assert_eq!(chain[1], der_chain(&std::fs::read(&ca).unwrap())[0]);
        let (ca_info, first) = (info(&ca), info(&srv));
        assert_eq!(ca_info.not_after - ca_info.not_before, CA_DAYS * DAY);
        assert_eq!(first.not_after - first.not_before, SERVER_DAYS * DAY);
        assert!((now - BACKDATE - first.not_before).abs() < 60);

        // 31 days left: kept. 29 days left: made again, from the same CA,
        // and then kept.
        let cert = std::fs::read(&srv).unwrap();
        let later = first.not_after - 31 * DAY;
        own_ca(dir.path(), &[], later).unwrap();
        assert_eq!(std::fs::read(&srv).unwrap(), cert);
        let later = first.not_after - 29 * DAY;
        let (chain, _, _) = own_ca(dir.path(), &[], later).unwrap();
        let again = std::fs::read(&srv).unwrap();
        assert_ne!(again, cert);
        assert_eq!(info(&srv).not_after, later - BACKDATE + SERVER_DAYS * DAY);
        assert_eq!(info(&ca), ca_info, "the CA stays");
        assert_eq!(
            der_chain(&chain)[1],
            der_chain(&std::fs::read(&ca).unwrap())[0]
        );
        own_ca(dir.path(), &[], later + DAY).unwrap();
        assert_eq!(std::fs::read(&srv).unwrap(), again);
    }

    #[test]
    fn an_administrators_certificate_that_expired_is_refused() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["farm".to_string()]).unwrap();
        let now = now();
        valid_for(&mut p, now - 100 * DAY, 99);
        let pem = p.self_signed(&key).unwrap().pem();
        let file = Path::new("farm.pem");
        let e = check_lifetime(file, pem.as_bytes(), now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("farm.pem: the certificate expired on"), "{e}");
        assert!(e.contains("renew it"), "{e}");
        check_lifetime(file, pem.as_bytes(), now - 2 * DAY).unwrap();
    }
}
