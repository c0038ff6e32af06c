use super::*;
use crate::assets::find;
use axum::routing::get;
use std::collections::BTreeSet;
use std::path::Path;

fn files(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, base, out);
        } else {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            out.insert(rel);
        }
    }
}

#[test]
fn every_file_under_web_is_served_and_nothing_else() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut on_disk = BTreeSet::new();
    files(&web, &web, &mut on_disk);
    let served: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
    assert_eq!(on_disk, served, "add new files to ASSETS in src/assets.rs");
}

/// Each module imports only modules that are served, by a relative path:
/// a typo would otherwise show only in a browser.
#[test]
fn every_import_names_a_served_module() {
    for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        let text = std::str::from_utf8(a.body).unwrap();
        let dir = Path::new(a.path).parent().unwrap();
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let spec = line
                .rsplit_once(" from ")
                .map_or(line.trim_start_matches("import "), |(_, s)| s);
            let spec = spec
                .trim()
                .trim_end_matches(';')
                .trim_matches(|c| c == '"' || c == '\'');
            assert!(
                spec.starts_with("./") || spec.starts_with("../"),
                "{}: {line}",
                a.path
            );
            let mut p = dir.to_path_buf();
            for part in spec.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        p.pop();
                    }
                    x => p.push(x),
                }
            }
            let p = p.to_string_lossy().into_owned();
            assert!(
                find(&p).is_some(),
                "{}: imports {spec} ({p}), not served",
                a.path
            );
        }
    }
}

#[test]
fn the_whole_ui_is_light() {
    let total: usize = ASSETS.iter().map(|a| a.gzipped().len()).sum();
    assert!(total < 300 * 1024, "the UI is {total} bytes gzipped");
}

async fn get_with(app: &Router, path: &str, headers: &[(&str, &str)]) -> Response<Body> {
    let mut b = Request::builder().uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    app.clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(r: Response<Body>) -> String {
    let b = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    String::from_utf8_lossy(&b).into_owned()
}

#[tokio::test]
async fn pages_files_and_the_api_each_go_where_they_belong() {
    let api = Router::new()
        .route("/api/v1/whoami", get(|| async { "api" }))
        .route("/metrics", get(|| async { "metrics" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "api 404") });
    let app = router(api);
    assert_eq!(
        text(get_with(&app, "/api/v1/whoami", &[]).await).await,
        "api"
    );
    assert_eq!(text(get_with(&app, "/metrics", &[]).await).await, "metrics");
    // An unknown API path is the API's 404, not the UI's page.
    let r = get_with(&app, "/api/v1/nope", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(text(r).await, "api 404");
    // The app's pages are its one HTML page, whatever the path.
    for page in [
        "/",
        "/jobs",
        "/jobs/shot42-comp",
        "/frames/12",
        "/hosts?state=DOWN",
    ] {
        let r = get_with(&app, page, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{page}");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(text(r).await.contains("<kiln-app"), "{page}");
    }
    let r = get_with(&app, "/ui/app.js", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
    let r = get_with(&app, "/ui/app.js", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // Gzipped when asked, and the same bytes once inflated.
    let r = get_with(&app, "/ui/app.js", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    let gz = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert_eq!(plain, find("app.js").unwrap().body);
    let r = get_with(&app, "/ui/app.js", &[("accept-encoding", "gzip;q=0")]).await;
    assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
    for missing in ["/ui/nope.js", "/favicon.ico", "/ui/../Cargo.toml"] {
        let r = get_with(&app, missing, &[]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    let r = app
        .clone()
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/jobs")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}
