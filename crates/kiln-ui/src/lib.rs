//! The web UI, served at `/` on the server's one port. Its files are Kiln's
//! own ES modules, CSS and one HTML page, built into the binary: no Node,
//! no build step, nothing to install beside the server. It talks to the
//! REST API and the event stream like any other client, so whatever it
//! does a script can do; this crate only serves files and never sees the
//! farm.

mod assets;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::Router;
use std::convert::Infallible;
use tower::ServiceExt;

pub use assets::{Asset, ASSETS};

/// Where the UI's files are served from; every other path that is not the
/// API's is one of the UI's pages, answered with `index.html` so that a
/// shared link (`/jobs/shot42-comp`) opens where it points.
pub const PREFIX: &str = "/ui/";

/// The UI in front of `api`: `/api/…` and `/metrics` go to `api`, the
/// rest to the UI.
pub fn router(api: Router) -> Router {
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let api = api.clone();
        async move {
            let path = req.uri().path();
            if path.starts_with("/api/") || path == "/api" || path == "/metrics" {
                return api.oneshot(req).await;
            }
            Ok::<_, Infallible>(serve(&req))
        }
    }))
}

/// A UI file, or the page for an app path, or a 404.
fn serve(req: &Request) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the web UI only answers GET; the API is under /api/v1/",
        );
    }
    let path = req.uri().path();
    let asset = match path.strip_prefix(PREFIX) {
        Some(file) => assets::find(file),
        // A page of the app: a path whose last part has no extension.
        None if !path.rsplit('/').next().unwrap_or("").contains('.') => assets::find("index.html"),
        None => None,
    };
    let Some(asset) = asset else {
        return plain(
            StatusCode::NOT_FOUND,
            "no such page: the web UI starts at /",
        );
    };
    let gzip = accepts_gzip(req);
    let etag = asset.etag(gzip);
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return with_headers(
            Response::new(Body::empty()),
            asset,
            &etag,
            gzip,
            StatusCode::NOT_MODIFIED,
        );
    }
    let body = if req.method() == Method::HEAD {
        Body::empty()
    } else if gzip {
        Body::from(asset.gzipped())
    } else {
        Body::from(asset.body)
    };
    with_headers(Response::new(body), asset, &etag, gzip, StatusCode::OK)
}

fn accepts_gzip(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// The page's policy: its own scripts and styles only, and no framing.
/// Images may be `data:` and `blob:` URLs (thumbnails, charts).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn with_headers(
    mut r: Response<Body>,
    asset: &Asset,
    etag: &str,
    gzip: bool,
    status: StatusCode,
) -> Response<Body> {
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    // Always revalidated: a new server's files show at the next load, and
    // an unchanged file costs a 304.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests;
