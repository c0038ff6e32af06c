//! Trust on first use: fetching the certificate a server presents before
//! trusting it, so a person can compare its fingerprint with the one the
//! server printed (`kiln login`, `kiln worker --join`).

use super::cert::{cert_info, fingerprint};
use super::pin::https_target;
use crate::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The certificate a server presented, to be shown and then trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedCa {
    /// The last certificate of the chain, PEM: the CA when the server
    /// sends its chain, the certificate itself when it sends only one.
    pub pem: Vec<u8>,
    /// Its fingerprint, as [`fingerprint`] writes it.
    pub fingerprint: String,
    /// Its subject, like `CN=Kiln server CA`.
    pub subject: String,
}

/// Accepts whatever chain the server presents (trusting it is for the
/// person who compares the fingerprint), but still checks the handshake's
/// signature with the presented key: the server proves it holds the key
/// of the certificate it shows.
#[derive(Debug)]
struct AnyChain(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How long reaching the server and its handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the `https://host:port` server at `url`, completes a TLS
/// handshake trusting any certificate, and returns the last certificate
/// it presented. Nothing else is sent: the connection is closed after the
/// handshake.
pub async fn fetch_ca(url: &str) -> Result<FetchedCa> {
    let (host, port) = https_target(url)?;
    let url = match host.contains(':') {
        true => format!("https://[{host}]:{port}"),
        false => format!("https://{host}:{port}"),
    };
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((&*host, port))).await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            return Err(Error::Unreached(format!(
                "cannot reach the server at {url} ({e}): is `kiln server` running there?"
            )))
        }
        Err(_) => {
            return Err(Error::Unreached(format!(
                "cannot reach the server at {url}: no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            )))
        }
    };
    let _ = tcp.set_nodelay(true);
    // The process's provider: ring, the only one the build enables.
    let builder = rustls::ClientConfig::builder();
    let provider = builder.crypto_provider().clone();
    let mut cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyChain(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(host.clone())
        .map_err(|e| Error::Invalid(format!("{url}: {host:?} is not a host name ({e})")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp)).await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(handshake_failed(&url, e)),
        Err(_) => {
            return Err(Error::Unavailable(format!(
                "the server at {url} did not complete a TLS handshake within {}s",
                HANDSHAKE_TIMEOUT.as_secs()
            )))
        }
    };
    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(<[_]>::to_vec)
        .unwrap_or_default();
    // A polite close, not waited on long: the certificate is in hand.
    let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
    let last = chain
        .last()
        .ok_or_else(|| Error::Untrusted(format!("the server at {url} presented no certificate")))?;
    let info = cert_info(last).map_err(|e| {
        Error::Untrusted(format!(
            "the server at {url} presented a certificate that is {e}"
        ))
    })?;
    // Written as rcgen writes `ca.pem`, so the bytes match the file.
    let pem = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", last.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    Ok(FetchedCa {
        pem: pem.into_bytes(),
        fingerprint: fingerprint(last),
        subject: info.subject,
    })
}

/// What a failed handshake means to the person fetching the CA.
fn handshake_failed(url: &str, e: std::io::Error) -> Error {
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(c)) => Error::Untrusted(format!(
            "the server at {url} presented a certificate it cannot prove it holds the key of \
             ({c:?}): do not trust it"
        )),
        Some(rustls::Error::InvalidMessage(_)) => Error::Unavailable(format!(
            "the server at {url} does not speak TLS ({e}): is it a plaintext one (`kiln up`, \
                 `kiln server --plaintext`)? Those have no certificate to trust; use http://"
        )),
        _ => Error::Unavailable(format!("the TLS handshake with {url} failed: {e}")),
    }
}

#[cfg(test)]
mod tests;
