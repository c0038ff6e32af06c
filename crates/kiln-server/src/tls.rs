//! The server's certificate: the administrator's (`--tls-cert`/`--tls-key`),
//! or one signed by a CA of the server's own, made on first start in the
//! data directory (`ca.pem`, `ca.key`, `server.pem`, `server.key`). The CA
//! stays; the server certificate is made again, from the same CA, when the
//! names it must carry change, so clients that trust the CA keep working.

use crate::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// SHA-256 of its (first) certificate's DER, as `SHA256:AB:CD:...`.
    pub fingerprint: String,
    /// Whether `file` is the server's own CA.
    pub own_ca: bool,
}

/// The rustls configuration for `tls`, making the CA and certificate in
/// `dir` when they are missing or name the wrong hosts.
pub fn prepare(dir: &Path, tls: &Tls) -> Result<Option<(Arc<rustls::ServerConfig>, Trust)>, Error> {
    let (cert, key, trust) = match tls {
        Tls::Plaintext => return Ok(None),
        Tls::Files { cert, key } => {
            let c = read(cert)?;
            let k = read(key)?;
            let trust = Trust {
                fingerprint: fingerprint(&c).unwrap_or_else(|| "?".into()),
                file: cert.clone(),
                own_ca: false,
            };
            (c, k, trust)
        }
        Tls::OwnCa { names } => own_ca(dir, names)?,
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

/// `SHA256:AB:CD:...` of the first certificate in `pem`.
pub fn fingerprint(pem: &[u8]) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let der = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    let hex: Vec<String> = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Some(format!("SHA256:{}", hex.join(":")))
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

fn own_ca(dir: &Path, extra: &[String]) -> Result<(Vec<u8>, Vec<u8>, Trust), Error> {
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
        let cert = ca_params().self_signed(&key).map_err(rc(&ca_file))?;
        // The key first: a CA certificate without its key is useless.
        write_atomic(&ca_key, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&ca_pem, cert.pem().as_bytes(), 0o644)?;
        tracing::info!("made a new CA for this server: {ca_file}");
    }
    let ca_cert = read(&ca_pem)?;
    let names = wanted_names(extra);
    let listed = names.join("\n") + "\n";
    let current = !made_ca
        && srv_pem.is_file()
        && srv_key.is_file()
        && std::fs::read_to_string(&srv_names).is_ok_and(|n| n == listed);
    if !current {
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
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rc(&ca_file))?;
        let cert = p.signed_by(&key, &issuer).map_err(rc(&ca_file))?;
        write_atomic(&srv_key, key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&srv_pem, cert.pem().as_bytes(), 0o644)?;
        write_atomic(&srv_names, listed.as_bytes(), 0o644)?;
        tracing::info!(names = %names.join(", "), "made a server certificate from the CA");
    }
    let trust = Trust {
        fingerprint: fingerprint(&ca_cert).unwrap_or_else(|| "?".into()),
        file: ca_pem,
        own_ca: true,
    };
    Ok((read(&srv_pem)?, read(&srv_key)?, trust))
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
}
