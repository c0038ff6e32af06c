//! One webhook's HTTP/1.1 connection: opened on first use (TLS for
//! `https`, trusting the system's roots), kept alive between deliveries,
//! and opened again after any failure. Nothing is pooled or shared: each
//! webhook's deliveries go one at a time, in order.

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long a connection, or a request on one, may take.
const CONNECT: Duration = Duration::from_secs(10);
const ANSWER: Duration = Duration::from_secs(30);
/// The most of an answer's body read (then the connection is dropped).
const BODY_MAX: usize = 64 * 1024;

/// Where a webhook sends, checked once when it is made.
#[derive(Debug, Clone)]
pub struct Target {
    pub uri: Uri,
    tls: bool,
    host: String,
    port: u16,
}

impl Target {
    /// Parses and checks a webhook URL; the error says what to give instead.
    pub fn parse(url: &str) -> Result<Target, String> {
        let fix = "give an absolute http:// or https:// URL such as https://hooks.example.com/kiln";
        if url.len() > 2048 {
            return Err(format!("url: longer than 2048 characters; {fix}"));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("url: {url:?} is not a URL ({e}); {fix}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(s) => return Err(format!("url: scheme {s:?} is not http or https; {fix}")),
            None => return Err(format!("url: {url:?} has no scheme; {fix}")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("url: {url:?} has no host; {fix}"))?;
        if authority.as_str().contains('@') {
            return Err(
                "url: user names and passwords in the URL would be shown in listings; \
                 receivers check the Kiln-Signature header instead"
                    .into(),
            );
        }
        // `http` reads a port it cannot parse as none: refuse it rather
        // than send to 80 or 443 while naming another.
        let a = authority.as_str();
        let rest = match a.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map_or("", |(_, r)| r),
            None => a.rfind(':').map_or("", |i| &a[i..]),
        };
        if let Some(port) = rest.strip_prefix(':') {
            if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                return Err(format!("url: {url:?} has no valid port (1-65535); {fix}"));
            }
        }
        let host = authority.host().trim_matches(['[', ']']).to_string();
        if host.is_empty() {
            return Err(format!("url: {url:?} has no host; {fix}"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            uri,
            tls,
            host,
            port,
        })
    }
}

/// A connection to one target, if one is open.
pub struct Client {
    target: Target,
    conn: Option<SendRequest<Full<Bytes>>>,
}

/// What a POST got: the status, or why there was none.
pub type Answer = Result<u16, String>;

impl Client {
    pub fn new(target: Target) -> Client {
        Client { target, conn: None }
    }

    /// POSTs `body` with `headers`; a failure closes the connection.
    pub async fn post(&mut self, headers: &[(&str, String)], body: Bytes) -> Answer {
        let answer = tokio::time::timeout(ANSWER, self.try_post(headers, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", ANSWER.as_secs())));
        if answer.is_err() {
            self.conn = None;
        }
        answer
    }

    async fn try_post(&mut self, headers: &[(&str, String)], body: Bytes) -> Answer {
        let reused = self.conn.as_ref().is_some_and(|c| !c.is_closed());
        match self.send(headers, body.clone()).await {
            // A kept-alive connection the receiver closed meanwhile: once
            // more on a fresh one, rather than a failure and a backoff.
            Err(_) if reused => {
                self.conn = None;
                self.send(headers, body).await
            }
            answer => answer,
        }
    }

    async fn send(&mut self, headers: &[(&str, String)], body: Bytes) -> Answer {
        let conn = match self.conn.as_mut() {
            Some(c) if !c.is_closed() => c,
            _ => self.conn.insert(self.connect().await?),
        };
        conn.ready()
            .await
            .map_err(|e| format!("connection to {} lost: {e}", self.target.host))?;
        let path = self.target.uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = self.target.uri.authority().expect("checked").as_str();
        let mut req = Request::post(path)
            .header("host", authority)
            .header("content-type", "application/json")
            .header("user-agent", concat!("kiln/", env!("CARGO_PKG_VERSION")));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("building the request: {e}"))?;
        let res = conn
            .send_request(req)
            .await
            .map_err(|e| format!("sending to {}: {e}", self.target.host))?;
        let status = res.status().as_u16();
        // Read (a bounded part of) the answer so the connection can serve
        // the next delivery; a receiver that says more is cut off. The
        // status is the answer: a body cut short only costs the connection.
        let mut body = res.into_body();
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => read += f.data_ref().map_or(0, |d| d.len()),
                Err(_) => read = usize::MAX,
            }
            if read > BODY_MAX {
                self.conn = None;
                break;
            }
        }
        Ok(status)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let t = &self.target;
        let tcp = tokio::time::timeout(CONNECT, TcpStream::connect((t.host.as_str(), t.port)))
            .await
            .map_err(|_| format!("connecting to {}:{}: timed out", t.host, t.port))?
            .map_err(|e| format!("connecting to {}:{}: {e}", t.host, t.port))?;
        let _ = tcp.set_nodelay(true);
        if t.tls {
            let name = rustls::pki_types::ServerName::try_from(t.host.clone())
                .map_err(|e| format!("url: {:?} is not a host name for TLS: {e}", t.host))?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {}: {e}", t.host))?;
            handshake(TokioIo::new(tls)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }
}

async fn handshake<T>(io: T) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// Trusts the system's certificate authorities (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured), loaded once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("webhooks: reading the system's CA certificates: {e}");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, "webhooks: system CA certificates");
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_with_a_fix() {
        let t = Target::parse("https://hooks.example.com/kiln?x=1").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("hooks.example.com", 443));
        let t = Target::parse("http://10.0.0.7:8080/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("10.0.0.7", 8080, false));
        let t = Target::parse("http://[::1]:9/x").unwrap();
        assert_eq!(t.host, "::1");
        for bad in [
            "hooks.example.com/kiln",
            "ftp://x/",
            "/just/a/path",
            "http://user:pw@x/",
            "http://x:99999/",
            "http://x:/",
            "not a url",
            "",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.starts_with("url: "), "{bad:?}: {e}");
        }
    }
}
