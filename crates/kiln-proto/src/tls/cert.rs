//! What a person compares and a server checks about a certificate: its
//! SHA-256 fingerprint in one text form, and its subject and lifetime.

use crate::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

/// The DER of each certificate in `pem`, in order; `Invalid` when it is
/// not PEM or holds none (`what` names it in the message).
pub fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("{what} is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

/// `SHA256:AB:CD:...` of a certificate's DER: what `kiln server` prints
/// for its CA and what `kiln login` shows before trusting one.
pub fn fingerprint(der: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("SHA256:{}", hex.join(":"))
}

/// Whether two fingerprints are the same, however they were written:
/// case, colons, spaces and a leading `sha256:` do not count. Nothing
/// matches an empty one.
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    fn bare(s: &str) -> String {
        let s = s.trim();
        let s = match s.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("sha256:") => &s[7..],
            _ => s,
        };
        s.chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    }
    let (a, b) = (bare(a), bare(b));
    !a.is_empty() && a == b
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Its subject, like `CN=Kiln server CA`.
    pub subject: String,
    /// Its validity, in seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads a certificate's subject and validity from its DER.
pub fn cert_info(der: &[u8]) -> Result<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::Invalid(format!("not an X.509 certificate: {e}")))?;
    let validity = cert.validity();
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_however_they_are_written() {
        let fp = fingerprint(b"certificate");
        assert!(fp.starts_with("SHA256:"));
        assert_eq!(fp.len(), 7 + 32 * 3 - 1);
        assert_eq!(fp, fp.to_uppercase());
        let bare = fp[7..].replace(':', "").to_lowercase();
        for other in [
            fp.clone(),
            fp.to_lowercase(),
            bare.clone(),
            format!("sha256:{bare}"),
            format!("  {}  ", fp[7..].to_lowercase()),
            fp[7..].replace(':', " "),
        ] {
            assert!(same_fingerprint(&fp, &other), "{other}");
            assert!(same_fingerprint(&other, &fp), "{other}");
        }
        assert!(!same_fingerprint(&fp, &fingerprint(b"another")));
        assert!(
            !same_fingerprint(&fp, &bare[..62]),
            "a prefix is not enough"
        );
        assert!(!same_fingerprint("", ""));
        assert!(!same_fingerprint("SHA256:", "sha256:"));
    }

    #[test]
    fn a_certificates_subject_and_lifetime_are_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["farm".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Studio CA");
        p.not_before = rcgen::date_time_ymd(2030, 1, 2);
        p.not_after = rcgen::date_time_ymd(2031, 3, 4);
        let cert = p.self_signed(&key).unwrap();
        let info = cert_info(cert.der()).unwrap();
        assert_eq!(info.subject, "CN=Studio CA");
        assert_eq!(info.not_before, 1_893_542_400);
        assert_eq!(info.not_after, 1_930_348_800);
        assert!(matches!(cert_info(b"junk"), Err(Error::Invalid(_))));
    }
}
