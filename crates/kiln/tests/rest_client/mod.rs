//! A REST client on one TLS connection as curl or Python's urllib would
//! be (hyper over tokio-rustls, HTTP/1.1 or HTTP/2 by ALPN), and a checker
//! of answers against the served OpenAPI document's schemas: shared by
//! the REST tests.
#![allow(dead_code)]

use crate::common::Farm;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::Value;
use std::sync::Arc;

/// The HTTP version a client speaks (chosen by ALPN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Version {
    H1,
    H2,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// A REST client on one TLS connection, trusting the farm's CA: what
/// curl or Python's urllib would do.
pub struct Rest {
    rt: tokio::runtime::Runtime,
    sender: Sender,
    token: Option<String>,
}

/// An answer: status, content type, body as JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Rest {
    pub fn connect(farm: &Farm, version: Version, token: Option<&str>) -> Rest {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ca = std::fs::read(farm.path("data/ca.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![match version {
            Version::H1 => b"http/1.1".to_vec(),
            Version::H2 => b"h2".to_vec(),
        }];
        let port = farm.port;
        let sender = rt.block_on(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let agreed = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let io = hyper_util::rt::TokioIo::new(tls);
            match version {
                Version::H1 => {
                    assert_eq!(agreed.as_deref(), Some(&b"http/1.1"[..]));
                    let (s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
                    tokio::spawn(conn);
                    Sender::H1(s)
                }
                Version::H2 => {
                    assert_eq!(agreed.as_deref(), Some(&b"h2"[..]));
                    let (s, conn) = hyper::client::conn::http2::handshake(
                        hyper_util::rt::TokioExecutor::new(),
                        io,
                    )
                    .await
                    .unwrap();
                    tokio::spawn(conn);
                    Sender::H2(s)
                }
            }
        });
        Rest {
            rt,
            sender,
            token: token.map(str::to_string),
        }
    }

    /// An answer whose body may be anything: status, content type, text.
    pub fn text(&mut self, method: &str, path: &str, body: &str) -> (u16, String, String) {
        let (status, content_type, bytes) = self.send(method, path, &[], body);
        (status, content_type, String::from_utf8(bytes).unwrap())
    }

    /// A GET's status, content type and bytes, whatever they are.
    pub fn bytes(&mut self, path: &str) -> (u16, String, Vec<u8>) {
        self.send("GET", path, &[], "")
    }

    /// An answer whose body must be JSON.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let (status, content_type, bytes) = self.send(method, path, headers, body);
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer {
            status,
            content_type,
            body,
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, Vec<u8>) {
        // HTTP/1.1 sends the path and a Host header, HTTP/2 the whole URI.
        let uri = match self.sender {
            Sender::H1(_) => path.to_string(),
            Sender::H2(_) => format!("https://localhost{path}"),
        };
        let mut req = hyper::Request::builder().method(method).uri(uri);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Sender::H1(_) = self.sender {
            req = req.header("host", "localhost");
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let sender = &mut self.sender;
        self.rt.block_on(async move {
            let res = match sender {
                Sender::H1(s) => {
                    s.ready().await.unwrap();
                    s.send_request(req).await.unwrap()
                }
                Sender::H2(s) => {
                    s.ready().await.unwrap();
                    s.send_request(req).await.unwrap()
                }
            };
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, content_type, bytes.to_vec())
        })
    }

    pub fn get(&mut self, path: &str) -> Answer {
        self.call("GET", path, &[], "")
    }

    pub fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        self.call("POST", path, headers, body)
    }

    pub fn put(&mut self, path: &str, body: &str) -> Answer {
        self.call("PUT", path, &[], body)
    }

    pub fn delete(&mut self, path: &str) -> Answer {
        self.call("DELETE", path, &[], "")
    }
}

/// A problem document with `status` whose detail is `detail`.
pub fn problem(a: &Answer, status: u16) -> String {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.content_type, "application/problem+json", "{a:?}");
    assert_eq!(a.body["status"], status, "{a:?}");
    assert!(
        a.body["type"].is_string() && a.body["title"].is_string(),
        "{a:?}"
    );
    a.body["detail"].as_str().unwrap().to_string()
}

/// The OpenAPI document, fetched from a real server.
pub struct Schema(pub Value);

impl Schema {
    /// The schema a `$ref` names.
    pub fn resolve<'a>(&'a self, r: &str) -> &'a Value {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a $ref outside the components: {r}"));
        let s = &self.0["components"]["schemas"][name];
        assert!(s.is_object(), "$ref {r} resolves to nothing");
        s
    }

    /// Every `$ref` anywhere in `v` resolves.
    pub fn check_refs(&self, v: &Value) -> usize {
        match v {
            Value::Object(m) => {
                let mut n = 0;
                if let Some(Value::String(r)) = m.get("$ref") {
                    self.resolve(r);
                    n += 1;
                }
                n + m.values().map(|v| self.check_refs(v)).sum::<usize>()
            }
            Value::Array(a) => a.iter().map(|v| self.check_refs(v)).sum(),
            _ => 0,
        }
    }

    /// Checks `v` against `schema` (the JSON Schema 2020-12 keywords
    /// utoipa writes); `at` names where, for the message.
    pub fn validate(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        macro_rules! ensure {
            ($c:expr, $($t:tt)*) => {
                if !$c {
                    return Err(format!($($t)*));
                }
            };
        }
        if let Some(r) = schema["$ref"].as_str() {
            return self.validate(self.resolve(r), v, at);
        }
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                self.validate(s, v, at)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(any) = schema[key].as_array() {
                let n = any
                    .iter()
                    .filter(|s| self.validate(s, v, at).is_ok())
                    .count();
                ensure!(
                    n >= 1 && (key == "anyOf" || n == 1),
                    "{at}: {v} matches {n} of {key} {schema}"
                );
            }
        }
        if let Some(e) = schema["enum"].as_array() {
            ensure!(e.contains(v), "{at}: {v} is not one of {e:?}");
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() {
            let fits = types.iter().any(|t| match *t {
                "null" => v.is_null(),
                "boolean" => v.is_boolean(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "string" => v.is_string(),
                "array" => v.is_array(),
                "object" => v.is_object(),
                other => panic!("{at}: unknown type {other}"),
            });
            ensure!(fits, "{at}: {v} is not of type {types:?}");
        }
        if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
            let below = n < min;
            ensure!(!below, "{at}: {n} < minimum {min}");
        }
        if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
            for (i, x) in a.iter().enumerate() {
                self.validate(items, x, &format!("{at}[{i}]"))?;
            }
        }
        if let Some(o) = v.as_object() {
            let props = schema["properties"].as_object();
            for req in schema["required"].as_array().into_iter().flatten() {
                let k = req.as_str().unwrap();
                ensure!(o.contains_key(k), "{at}: required {k} missing in {v}");
            }
            for (k, x) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.validate(s, x, &format!("{at}.{k}"))?,
                    None => match schema.get("additionalProperties") {
                        Some(s @ Value::Object(_)) => self.validate(s, x, &format!("{at}.{k}"))?,
                        // A field the schema does not declare: the
                        // document would be lying by omission.
                        _ => ensure!(props.is_none(), "{at}: {k} is not in the schema {schema}"),
                    },
                }
            }
        }
        Ok(())
    }

    /// Checks an answer of `method path` against the document's response
    /// schema for its status.
    pub fn check(&self, method: &str, route: &str, a: &Answer) {
        let op = &self.0["paths"][route][method];
        assert!(op.is_object(), "{method} {route} is not in the document");
        let res = &op["responses"][a.status.to_string()];
        assert!(
            res.is_object(),
            "{method} {route}: status {} is not documented",
            a.status
        );
        let content = &res["content"][a.content_type.as_str()];
        assert!(
            content.is_object(),
            "{method} {route} {}: content type {} is not documented",
            a.status,
            a.content_type
        );
        if let Err(e) = self.validate(&content["schema"], &a.body, &format!("{method} {route}")) {
            panic!("{e}");
        }
    }
}
