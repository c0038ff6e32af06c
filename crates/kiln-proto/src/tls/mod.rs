//! TLS on the wire: the server's rustls configuration from PEM, and the
//! client's: which CA it trusts for a URL, and errors that say what to do
//! when the server's certificate is not trusted. Plaintext (`http://`) is
//! for loopback only. Trusting a server's CA on first use is in `fetch`
//! (what the server presents) and `pin` (where it is kept).

mod cert;
mod fetch;
mod pin;

pub use cert::{cert_info, fingerprint, pem_certificates, same_fingerprint, CertInfo};
pub use fetch::{fetch_ca, FetchedCa};
pub use pin::{pinned_ca_path, save_trusted_ca};

use crate::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tonic::transport::{Certificate, ClientTlsConfig};

/// The CA this process trusts above all others (`--ca` / `KILN_CA`).
static CA_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Makes every connection of this process trust the CA in `path` (and
/// only it). Set once, at startup; later calls change nothing.
pub fn trust_ca_file(path: PathBuf) {
    let _ = CA_FILE.set(path);
}

/// The server side: `cert_pem` (the server's certificate, then any
/// intermediates) and its key; ALPN offers HTTP/2 (gRPC, REST) and
/// HTTP/1.1 (REST clients such as Python's urllib).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Invalid(format!("the TLS certificate is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Invalid(
            "the TLS certificate file holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Invalid(format!("the TLS key is not a PEM private key: {e}")))?;
    // The provider is ring: the only one the build enables.
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Invalid(format!("the TLS certificate and key do not fit: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `host` names this machine: plaintext may go there.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_ca(path: &Path) -> Result<Certificate> {
    std::fs::read(path)
        .map(Certificate::from_pem)
        .map_err(|e| Error::Invalid(format!("cannot read the CA file {}: {e}", path.display())))
}

/// The CA file connections to `url` trust: `--ca`/`KILN_CA`, else the one
/// `kiln login` stored for that server. `None`: the system's roots (or a
/// plaintext URL).
pub fn trusted_ca_file(url: &str) -> Option<PathBuf> {
    let (host, port) = pin::https_target(url).ok()?;
    CA_FILE
        .get()
        .cloned()
        .or_else(|| pin::pin_file(&host, port).filter(|f| f.is_file()))
}

/// The fingerprint of the CA (the last certificate) in the PEM file `path`.
pub fn file_fingerprint(path: &Path) -> Result<String> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read the CA file {}: {e}", path.display())))?;
    let certs = pem_certificates(&pem, &path.display().to_string())?;
    Ok(fingerprint(
        certs.last().expect("pem_certificates refuses none"),
    ))
}

/// The client side for `https://host:port`: trusts `--ca`/`KILN_CA`, else
/// the CA `kiln login` stored for this server, else the system's roots.
pub(crate) fn client_config(host: &str, port: u16) -> Result<ClientTlsConfig> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let cfg = ClientTlsConfig::new().domain_name(host);
    Ok(
        match CA_FILE
            .get()
            .cloned()
            .or_else(|| pin::pin_file(host, port).filter(|f| f.is_file()))
        {
            Some(ca) => cfg.ca_certificate(read_ca(&ca)?),
            None => cfg.with_native_roots(),
        },
    )
}

/// Why a connection failed, when it is the server's certificate: what to
/// do about it.
pub(crate) fn untrusted(url: &str, e: &(dyn std::error::Error + 'static)) -> Option<Error> {
    use rustls::CertificateError as C;
    let mut cur = Some(e);
    while let Some(err) = cur {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(c)) = tls {
            let fix = format!(
                "pass --ca FILE (the server's data directory has ca.pem), or run `kiln login {url}`"
            );
            return Some(Error::Untrusted(match c {
                C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                    "the server's certificate is not valid for the name in {url}: use a name it \
                     lists (a server with its own CA lists localhost, its hostname and each \
                     --tls-name), or {fix}"
                ),
                C::UnknownIssuer | C::BadSignature => {
                    format!("the server's certificate is not trusted: {fix}")
                }
                other => format!("the server's certificate is not valid ({other:?}): {fix}"),
            }));
        }
        cur = err.source();
    }
    None
}
