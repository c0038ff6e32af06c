//! The UI's files, built into the binary, each with its content type, and
//! a validator and gzipped copy made once, when first asked for.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::OnceLock;

/// One file of the UI.
pub struct Asset {
    /// Its path under `web/` (and under [`crate::PREFIX`] on the wire).
    pub path: &'static str,
    pub mime: &'static str,
    pub body: &'static [u8],
    derived: OnceLock<Derived>,
}

struct Derived {
    etag: String,
    gzipped: Vec<u8>,
}

impl Asset {
    fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            let hash = Sha256::digest(self.body);
            let etag = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            // Writing to memory cannot fail.
            let _ = gz.write_all(self.body);
            Derived {
                etag,
                gzipped: gz.finish().unwrap_or_default(),
            }
        })
    }

    /// A strong validator of the form sent (plain or gzipped).
    pub fn etag(&self, gzip: bool) -> String {
        let tag = &self.derived().etag;
        if gzip {
            format!("\"{tag}-gz\"")
        } else {
            format!("\"{tag}\"")
        }
    }

    pub fn gzipped(&self) -> Vec<u8> {
        self.derived().gzipped.clone()
    }
}

macro_rules! asset {
    ($path:literal, $mime:expr) => {
        Asset {
            path: $path,
            mime: $mime,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)),
            derived: OnceLock::new(),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `web/` (a test checks that none is left out).
pub static ASSETS: [Asset; 18] = [
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("auth.js", JS),
    asset!("fmt.js", JS),
    asset!("dom.js", JS),
    asset!("vtable.js", JS),
    asset!("chart.js", JS),
    asset!("views/login.js", JS),
    asset!("views/jobs.js", JS),
    asset!("views/job.js", JS),
    asset!("views/frame.js", JS),
    asset!("views/previews.js", JS),
    asset!("views/hosts.js", JS),
    asset!("views/submit.js", JS),
    asset!("views/farm.js", JS),
];

pub(crate) fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
