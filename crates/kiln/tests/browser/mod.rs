//! Debian's chromium, headless, driven through chromedriver (WebDriver)
//! for the web UI's tests: each test gets its own browser and profile.

#![allow(dead_code)]

use crate::common;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Browser {
    pub c: Client,
    pub base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

impl Browser {
    /// A browser on `base` (the farm's URL), or `None` (the test is
    /// skipped, or fails under CI) where chromium is not installed.
    pub async fn start(base: &str) -> Option<Browser> {
        let Some(chrome) = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]) else {
            common::skip("chromium is not installed (apt-get install chromium chromium-driver)");
            return None;
        };
        let Some(driver) = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
        else {
            common::skip("chromedriver is not installed (apt-get install chromium-driver)");
            return None;
        };
        let port = common::free_port();
        // Its own process group, with the browsers it starts: a test that
        // fails leaves none of them behind (see Drop).
        let driver = Command::new(driver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chrome,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1600,1000", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    "--disable-features=Translate,MediaRouter",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let c = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    panic!("chromedriver did not start a browser: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Some(Browser {
            c,
            base: base.trim_end_matches('/').to_string(),
            driver,
            _profile: profile,
        })
    }

    /// Signs in with a token by the link `kiln up` prints (the token after
    /// `#`), and waits for the first page.
    pub async fn sign_in(&self, token: &str) {
        self.goto(&format!("/login#token={token}")).await;
        self.wait_text("My jobs", Duration::from_secs(10)).await;
    }

    pub async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// The first element matching `css`, waiting up to 15 s for it.
    pub async fn el(&self, css: &str) -> Element {
        self.c
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Every element matching `css` now.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.c.find_all(Locator::Css(css)).await.unwrap()
    }

    /// The page's text.
    pub async fn text(&self) -> String {
        self.el("body").await.text().await.unwrap()
    }

    /// The text of the first element matching `css`, read again if the page
    /// redrew it between finding and reading (live updates replace rows).
    pub async fn text_of(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            match self.el(css).await.text().await {
                Ok(t) => return t,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    eprintln!("reading {css} again: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot read {css}: {e}"),
            }
        }
    }

    /// Waits until the page's text contains `want` (or `timeout` passes:
    /// a panic that shows what the page says).
    pub async fn wait_text(&self, want: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let t = self.text().await;
            if t.contains(want) {
                return;
            }
            if start.elapsed() > timeout {
                panic!("the page never said {want:?}; it says:\n{t}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the button (or link) whose text is `label`.
    pub async fn click_text(&self, label: &str) {
        let xpath =
            format!("//button[normalize-space(.)='{label}'] | //a[normalize-space(.)='{label}']");
        self.click_xpath(&xpath).await;
    }

    /// Clicks the first element `xpath` finds, finding it again if the page
    /// redrew it meanwhile (live updates replace rows).
    pub async fn click_xpath(&self, xpath: &str) {
        let start = Instant::now();
        loop {
            let e = self
                .c
                .wait()
                .at_most(Duration::from_secs(15))
                .for_element(Locator::XPath(xpath))
                .await
                .unwrap_or_else(|e| panic!("nothing at {xpath}: {e}"));
            match e.click().await {
                Ok(()) => return,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    eprintln!("clicking {xpath} again: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot click {xpath}: {e}"),
            }
        }
    }

    /// Whether a button labelled `label` is on the page now.
    pub async fn has_button(&self, label: &str) -> bool {
        let xpath = format!("//button[normalize-space(.)='{label}']");
        !self
            .c
            .find_all(Locator::XPath(&xpath))
            .await
            .unwrap()
            .is_empty()
    }

    /// Saves a screenshot as `target/tmp/ui-screenshots/NAME.png`.
    pub async fn shot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Messages the page logged as errors (uncaught exceptions among them).
    pub async fn errors(&self) -> Vec<String> {
        let v = self
            .c
            .execute("return window.__kilnErrors || []", vec![])
            .await
            .unwrap();
        serde_json::from_value(v).unwrap_or_default()
    }

    pub async fn close(self) {
        let _ = self.c.clone().close().await;
    }
}

impl Drop for Browser {
    /// chromedriver and every browser process it started, passed or failed.
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}
