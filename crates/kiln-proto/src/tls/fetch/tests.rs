//! `fetch_ca` against TLS servers on real sockets: the certificate a
//! server presents, its chain's last one, and servers that cannot prove
//! they hold the key, speak no TLS or do not answer.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Presents `chain` and signs with `key`, matching or not.
#[derive(Debug)]
struct Presents(Arc<CertifiedKey>);

impl ResolvesServerCert for Presents {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS server on a free loopback port that presents `chain` and signs
/// its handshakes with `key`; returns its URL.
async fn serve(chain: Vec<CertificateDer<'static>>, key: &KeyPair) -> String {
    let builder = rustls::ServerConfig::builder();
    let signer = builder
        .crypto_provider()
        .key_provider
        .load_private_key(key.serialize_der().try_into().unwrap())
        .unwrap();
    let mut cfg = builder
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Presents(Arc::new(CertifiedKey::new(
            chain, signer,
        )))));
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.read(&mut [0; 64]).await;
                }
            });
        }
    });
    url
}

fn ca() -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Studio CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    (cert, Issuer::new(p, key))
}

#[tokio::test]
async fn the_last_certificate_of_the_chain_is_fetched() {
    // A chain: the CA comes back, not the server's own certificate.
    let (ca, issuer) = ca();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let url = serve(vec![leaf.der().clone(), ca.der().clone()], &key).await;
    let got = fetch_ca(&url).await.unwrap();
    assert_eq!(String::from_utf8(got.pem).unwrap(), ca.pem());
    assert_eq!(got.fingerprint, fingerprint(ca.der()));
    assert_eq!(got.subject, "CN=Studio CA");

    // One self-signed certificate: that one.
    let key = KeyPair::generate().unwrap();
    let own = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let url = serve(vec![own.der().clone()], &key).await;
    let got = fetch_ca(&url).await.unwrap();
    assert_eq!(String::from_utf8(got.pem).unwrap(), own.pem());
    assert_eq!(got.fingerprint, fingerprint(own.der()));
}

#[tokio::test]
async fn a_server_must_hold_the_key_of_the_certificate_it_presents() {
    // Someone else's certificate, presented by a server without its key.
    let (ca, _) = ca();
    let url = serve(vec![ca.der().clone()], &KeyPair::generate().unwrap()).await;
    match fetch_ca(&url).await {
        Err(Error::Untrusted(m)) => assert!(m.contains("cannot prove it holds the key"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn servers_without_tls_or_not_there_say_so() {
    // Speaks something, but not TLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    match fetch_ca(&format!("https://127.0.0.1:{port}")).await {
        Err(Error::Unavailable(m)) => assert!(m.contains("does not speak TLS"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Nothing listens: refused, never sent.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    match fetch_ca(&format!("https://127.0.0.1:{port}")).await {
        Err(Error::Unreached(m)) => assert!(m.contains("cannot reach the server"), "{m}"),
        other => panic!("{other:?}"),
    }

    // A plaintext address has no certificate.
    match fetch_ca(&format!("http://127.0.0.1:{port}")).await {
        Err(Error::Invalid(m)) => assert!(m.contains("plaintext"), "{m}"),
        other => panic!("{other:?}"),
    }
}
