//! The web UI in a real browser (headless chromium) against a real server
//! and workers: signing in, watching frames finish live, retrying a dead
//! frame, reading and searching its log, killing with a confirmation, what
//! an artist may not do to another's job, a wrangler locking a host, and
//! previews of what frames rendered with an all-black one flagged.
//! Screenshots of each view land in target/tmp/ui-screenshots/.

mod browser;
mod common;

use browser::Browser;
use common::Farm;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A local user with a password and `grants`, and a token of theirs.
fn user_with_password(farm: &Farm, name: &str, password: &str, grants: &[&str]) -> String {
    let mut c = common::cli(&farm.url(), &["user", "create", name, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for g in grants {
        farm.kiln(&["grant", g, name]);
    }
    let out = farm.kiln(&["token", "create", "--user", name, "--name", "cli"]);
    out.trim().to_string()
}

fn submit_as(farm: &Farm, token: &str, name: &str, yaml: &str) {
    let path = farm.write_spec(name, yaml);
    let out = farm.kiln_as(Some(token), &["submit", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_artist_signs_in_watches_frames_finish_retries_a_dead_one_and_reads_its_log() {
    let farm = Farm::start(1, 4);
    let ana = user_with_password(&farm, "ana", "correct horse", &["artist"]);
    let bob = farm.user("bob", &["artist"]);
    // Frame 2 fails until it is retried (its marker is there then); it has
    // no retries of its own, so it dies at once.
    let marker = farm.path("retried");
    submit_as(&farm, &ana, "shot", &format!(
        "name: ana-shot\nlayers:\n  - name: render\n    retries: 0\n    frames: 1-3\n    command: |\n      \
         echo \"frame $KILN_FRAME starting\"\n      \
         if [ $KILN_FRAME = 2 ] && [ ! -e {m} ]; then touch {m}; echo 'ERROR: no licence'; exit 3; fi\n      \
         echo \"frame $KILN_FRAME second try done\"\n",
        m = marker.display()
    ));
    submit_as(
        &farm,
        &bob,
        "bob",
        "name: bob-long\nlayers:\n  - {name: sim, command: 'sleep 120', frames: 1}\n",
    );
    submit_as(
        &farm,
        &ana,
        "long",
        "name: ana-long\nlayers:\n  - {name: sim, command: 'sleep 120', frames: 1}\n",
    );
    rt().block_on(async {
        let Some(b) = Browser::start(&farm.url()).await else {
            return;
        };
        // A shared link to a job asks for a sign-in first, then opens.
        b.goto("/jobs/ana-shot").await;
        b.el("form.login").await;
        b.el("input[name=user]")
            .await
            .send_keys("ana")
            .await
            .unwrap();
        b.el("input[name=password]")
            .await
            .send_keys("wrong")
            .await
            .unwrap();
        b.click_text("Sign in").await;
        b.wait_text("wrong user name or password", Duration::from_secs(10))
            .await;
        b.shot("login").await;
        let pw = b.el("input[name=password]").await;
        pw.clear().await.unwrap();
        pw.send_keys("correct horse").await.unwrap();
        b.click_text("Sign in").await;
        b.wait_text("ana-shot", Duration::from_secs(10)).await;
        assert!(b
            .c
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/jobs/ana-shot"));
        // Frames finish and one dies, shown without a reload.
        b.wait_text("2 succeeded", Duration::from_secs(30)).await;
        b.wait_text("1 dead", Duration::from_secs(30)).await;
        b.wait_text("DEAD", Duration::from_secs(10)).await;
        b.shot("job").await;
        b.click_text("Retry 1 dead").await;
        b.wait_text("3 succeeded", Duration::from_secs(30)).await;
        // Filtered by host, from the URL.
        b.goto("/jobs/ana-shot?host=w0&state=SUCCEEDED").await;
        b.wait_text("render/3", Duration::from_secs(10)).await;
        assert_eq!(b.all("section.frames .vt-row[data-index]").await.len(), 3);
        b.click_text("render/2").await;
        // The frame's attempts and log: the second attempt's, searched.
        b.wait_text("second try done", Duration::from_secs(15))
            .await;
        let rows = b.all("kiln-vtable .vt-row[data-index]").await;
        assert_eq!(rows.len(), 2, "two attempts");
        b.el("input[type=search]")
            .await
            .send_keys("second")
            .await
            .unwrap();
        assert_eq!(b.text_of("pre.log mark").await, "second");
        // The first attempt's log, with its error line marked as one.
        b.click_xpath("(//div[contains(@class,'vt-row')][@data-index])[2]")
            .await;
        b.wait_text("ERROR: no licence", Duration::from_secs(10))
            .await;
        b.el("pre.log .line.err").await;
        b.shot("frame").await;
        // Another artist's job: readable, but no actions for ana.
        b.goto("/jobs/bob-long").await;
        b.wait_text("bob-long", Duration::from_secs(10)).await;
        b.wait_text("RUNNING", Duration::from_secs(30)).await;
        assert!(
            !b.has_button("Kill job").await,
            "ana may not kill bob's job"
        );
        assert!(!b.has_button("Pause").await);
        // Her own: killed, after a confirmation.
        b.goto("/jobs/ana-long").await;
        b.wait_text("RUNNING", Duration::from_secs(30)).await;
        b.click_text("Kill job").await;
        b.el("dialog[open]").await;
        b.shot("confirm").await;
        b.el("dialog[open] button[data-confirm]")
            .await
            .click()
            .await
            .unwrap();
        b.wait_text("KILLED", Duration::from_secs(15)).await;
        assert_eq!(farm.job_status("ana-long"), "KILLED");
        // The jobs list: hers, finished ones too.
        b.goto("/?all=true").await;
        b.wait_text("ana-long", Duration::from_secs(10)).await;
        let t = b.text().await;
        assert!(t.contains("ana-shot") && !t.contains("bob-long"), "{t}");
        b.shot("my-jobs").await;
        // A new job of hers comes in at the top, live; bob's does not.
        submit_as(
            &farm,
            &bob,
            "bob2",
            "name: bob-new\nlayers:\n  - {name: a, command: 'true', frames: 1}\n",
        );
        submit_as(
            &farm,
            &ana,
            "new",
            "name: ana-new\nlayers:\n  - {name: a, command: 'true', frames: 1}\n",
        );
        b.wait_text("ana-new", Duration::from_secs(10)).await;
        let first = b.text_of("kiln-vtable .vt-row[data-index='0']").await;
        assert!(first.starts_with("ana-new"), "{first}");
        assert!(!b.text().await.contains("bob-new"));
        // Hosts: readable by an artist, with no wrangler's actions.
        b.goto("/hosts").await;
        b.wait_text("1 of 1 hosts", Duration::from_secs(10)).await;
        assert!(!b.has_button("Lock").await && !b.has_button("Repair").await);
        let errors = b.errors().await;
        assert!(errors.is_empty(), "{errors:?}");
        b.close().await;
    });
}

#[test]
fn a_wrangler_locks_a_host_and_a_change_made_elsewhere_shows_live() {
    let farm = Farm::start(2, 2);
    let admin = common::token_for(&farm.url()).unwrap();
    rt().block_on(async {
        let Some(b) = Browser::start(&farm.url()).await else { return };
        // The sign-in link `kiln up` prints: the token after '#'.
        b.sign_in(&admin).await;
        assert!(!b.c.current_url().await.unwrap().as_str().contains("token"), "the token leaves the address bar");
        b.goto("/hosts").await;
        b.wait_text("2 of 2 hosts", Duration::from_secs(10)).await;
        b.click_xpath("//div[contains(@class,'vt-row')][.//span[normalize-space(.)='w0']]//button[normalize-space(.)='Lock']").await;
        b.el(".badge.h-locked").await;
        let hosts = farm.json(&["hosts"]);
        let w0 = hosts.as_array().unwrap().iter().find(|h| h["name"] == "w0").unwrap();
        assert_eq!(w0["lock"], "LOCKED");
        b.shot("hosts").await;
        // Unlocked from the CLI: the page follows by itself.
        farm.kiln(&["host", "unlock", "w0"]);
        let start = std::time::Instant::now();
        loop {
            if b.all(".badge.h-locked").await.is_empty() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "the unlock never showed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // What a host runs, and a frame whose log went quiet (stuck).
        let spec = farm.write_spec("quiet", "name: quiet\nlayers:\n  - {name: a, command: 'echo started; sleep 60', frames: 1}\n");
        farm.kiln(&["submit", &spec]);
        common::wait_until(Duration::from_secs(20), || farm.job_status("quiet") == "RUNNING");
        let host = farm.frames("quiet")[0]["host"].as_str().unwrap().to_string();
        b.goto(&format!("/hosts?host={host}")).await;
        // (Headings are upper-cased by the style: WebDriver reads them so.)
        b.wait_text(&format!("RUNNING ON {}", host.to_uppercase()), Duration::from_secs(10)).await;
        b.el(".host-detail a[href='/jobs/quiet']").await;
        let other = if host == "w0" { "w1" } else { "w0" };
        b.goto(&format!("/hosts?host={other}")).await;
        b.wait_text(&format!("{other} runs nothing now"), Duration::from_secs(10)).await;
        b.goto("/farm?quiet=60").await;
        b.wait_text("No running frame has been quiet that long", Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        b.goto("/farm?quiet=0.02").await;
        b.el("kiln-vtable a[href='/jobs/quiet']").await;
        // The farm: allocations, shows against their subscriptions, limits.
        farm.kiln(&["limit", "set", "nuke", "--max", "5"]);
        b.goto("/farm").await;
        b.wait_text("local.general", Duration::from_secs(10)).await;
        b.wait_text("0/5", Duration::from_secs(10)).await;
        // The last day as time series (the server samples at its start).
        assert_eq!(b.all("figure.chart").await.len(), 3);
        assert!(!b.all("figure.chart polyline").await.is_empty());
        b.shot("farm").await;
        // The quiet frame's memory and CPU, live from its host's heartbeats.
        let id = farm.frames("quiet")[0]["id"].as_i64().unwrap();
        b.goto(&format!("/frames/{id}")).await;
        b.wait_text("MEMORY AND CPU", Duration::from_secs(10)).await;
        let start = std::time::Instant::now();
        while b.all(".usage figure.chart polyline").await.is_empty() {
            assert!(start.elapsed() < Duration::from_secs(15), "no live memory chart");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        b.wait_text("Memory, attempt 1 (live)", Duration::from_secs(5)).await;
        b.shot("frame-usage").await;
        // The light theme, kept for the next page.
        b.el("button[title='Light or dark theme']").await.click().await.unwrap();
        b.goto("/hosts").await;
        b.wait_text("2 of 2 hosts", Duration::from_secs(10)).await;
        let theme = b
            .c
            .execute("return document.documentElement.dataset.theme", vec![])
            .await
            .unwrap();
        assert_eq!(theme, "light");
        b.shot("hosts-light").await;
        let errors = b.errors().await;
        assert!(errors.is_empty(), "{errors:?}");
        b.close().await;
    });
}

#[test]
fn a_job_composed_in_the_form_shows_the_servers_error_at_its_field_then_runs() {
    let farm = Farm::start(1, 2);
    let admin = common::token_for(&farm.url()).unwrap();
    rt().block_on(async {
        let Some(b) = Browser::start(&farm.url()).await else {
            return;
        };
        b.sign_in(&admin).await;
        b.el("nav a[href='/submit']").await.click().await.unwrap();
        b.el("input[name=name]")
            .await
            .send_keys("from-form")
            .await
            .unwrap();
        let cmd = b.el("input[name='layers[0].command']").await;
        cmd.send_keys("echo frame $KILN_FRAME").await.unwrap();
        let frames = b.el("input[name='layers[0].frames']").await;
        frames.clear().await.unwrap();
        frames.send_keys("1-x").await.unwrap();
        b.el("form.submit button[type=submit]")
            .await
            .click()
            .await
            .unwrap();
        // The server's words, at the field they name; nothing was made.
        let err = b
            .el("[data-error-for='layers[0].frames']:not(:empty)")
            .await;
        let text = err.text().await.unwrap();
        assert!(text.contains("\"1-x\" is not a frame range"), "{text}");
        b.shot("submit-error").await;
        assert!(farm.json(&["jobs", "--all"]).as_array().unwrap().is_empty());
        frames.clear().await.unwrap();
        frames.send_keys("1-4").await.unwrap();
        b.el("form.submit button[type=submit]")
            .await
            .click()
            .await
            .unwrap();
        b.wait_text("4 succeeded", Duration::from_secs(30)).await;
        assert!(b
            .c
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/jobs/from-form"));
        assert_eq!(farm.job_status("from-form"), "FINISHED");
        let errors = b.errors().await;
        assert!(errors.is_empty(), "{errors:?}");
        b.close().await;
    });
}

#[test]
fn after_its_server_is_killed_and_back_the_page_catches_up_on_what_it_missed() {
    let mut farm = Farm::start(1, 2);
    let admin = common::token_for(&farm.url()).unwrap();
    let spec = farm.write_spec(
        "watched",
        "name: watched\nlayers:\n  - {name: a, command: 'sleep 300', frames: 1-4}\n",
    );
    farm.kiln(&["submit", &spec]);
    common::wait_until(Duration::from_secs(20), || {
        farm.job_status("watched") == "RUNNING"
    });
    rt().block_on(async {
        let Some(b) = Browser::start(&farm.url()).await else {
            return;
        };
        b.sign_in(&admin).await;
        b.goto("/jobs/watched").await;
        b.wait_text("2 running", Duration::from_secs(15)).await;
        b.wait_text("live", Duration::from_secs(10)).await;
        farm.kill_server();
        b.wait_text("reconnecting", Duration::from_secs(15)).await;
        // Down long enough that the page waits seconds between tries: the
        // change below is made before it is back, so it must resume from
        // the last event it saw (Last-Event-ID), not from what comes next.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        farm.start_server();
        farm.kiln(&["pause", "watched"]);
        let start = std::time::Instant::now();
        loop {
            let badge = b.text_of(".job-head .badge").await;
            if badge == "PAUSED" {
                break;
            }
            // Nothing else happens to the job meanwhile (its frames sleep):
            // only the missed event can show the pause.
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the pause never showed: {badge}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.wait_text("● live", Duration::from_secs(10)).await;
        let errors = b.errors().await;
        assert!(errors.iter().all(|e| e.contains("reached")), "{errors:?}");
        b.close().await;
    });
}

#[test]
fn rendered_frames_show_previews_and_an_all_black_one_is_flagged() {
    let farm = Farm::start(1, 4);
    let admin = common::token_for(&farm.url()).unwrap();
    // The "renderer" copies prepared images into place: a gradient for
    // frames 1 and 3, all black for frame 2.
    let src = farm.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let lit = image::RgbImage::from_fn(320, 180, |x, y| {
        image::Rgb([(x * 255 / 320) as u8, (y * 255 / 180) as u8, 140])
    });
    for n in 1..=3 {
        let img = if n == 2 {
            image::RgbImage::new(320, 180)
        } else {
            lit.clone()
        };
        img.save(src.join(format!("img.{n:04}.png"))).unwrap();
    }
    let spec = format!(
        "name: shot\nlayers:\n  - name: beauty\n    frames: 1-3\n    command: mkdir -p out && cp {}/img.#ZFRAME#.png out/\n    outputs: [\"out/img.#ZFRAME#.png\"]\n",
        src.display()
    );
    farm.submit("shot", &spec);
    farm.wait_status("shot", "FINISHED", Duration::from_secs(30));
    rt().block_on(async {
        let Some(b) = Browser::start(&farm.url()).await else { return };
        b.sign_in(&admin).await;
        b.goto("/jobs/shot").await;
        // The frames table: a preview of each, and frame 2 flagged.
        b.wait_text("out/img.0002.png is all black", Duration::from_secs(10)).await;
        let flagged = b.all(".vt-row .flag").await;
        assert_eq!(flagged.len(), 1, "one frame flagged");
        assert_eq!(
            flagged[0].attr("title").await.unwrap().as_deref(),
            Some("out/img.0002.png is all black")
        );
        let loaded = || async {
            let v = b
                .c
                .execute(
                    "return [...document.querySelectorAll('img.thumb, img.sheet-img, img.preview')].filter(i => i.complete && i.naturalWidth > 0).length",
                    vec![],
                )
                .await
                .unwrap();
            v.as_u64().unwrap()
        };
        let start = std::time::Instant::now();
        while loaded().await < 3 {
            assert!(start.elapsed() < Duration::from_secs(10), "the previews never loaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.shot("frames-previews").await;
        // The contact sheet: three cards, the black one marked.
        b.click_text("Contact sheet").await;
        b.el(".sheet .card").await;
        assert!(b.c.current_url().await.unwrap().as_str().contains("view=sheet"), "a shareable view");
        let cards = b.all(".sheet .card").await;
        assert_eq!(cards.len(), 3);
        let marked = b.all(".sheet .card.flagged").await;
        assert_eq!(marked.len(), 1);
        assert!(marked[0].text().await.unwrap().contains("beauty/2"));
        let start = std::time::Instant::now();
        while loaded().await < 3 {
            assert!(start.elapsed() < Duration::from_secs(10), "the sheet's previews never loaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.shot("contact-sheet").await;
        // The flagged frame's page says what is wrong with its output.
        marked[0].click().await.unwrap();
        b.wait_text("BLACK", Duration::from_secs(10)).await;
        let t = b.text().await;
        assert!(t.contains("⚑ out/img.0002.png is all black"), "{t}");
        assert!(t.contains("320×180") && t.contains("brightness 0 %"), "{t}");
        b.shot("frame-outputs").await;
        // A job that waits for this one: the graph shows it, frame by frame
        // layers dashed, and the job it waits for is a link.
        farm.submit(
            "comp",
            "name: comp\ndepends: [shot]\nlayers:\n  - {name: a, command: 'true', frames: 1-3}\n  - {name: b, command: 'true', frames: 1-3, depends: [{layer: a, per_frame: true}]}\n",
        );
        b.goto("/jobs/comp").await;
        b.el("svg.graph a.job").await;
        assert_eq!(b.all("svg.graph .edge.per-frame").await.len(), 1);
        b.shot("job-graph").await;
        b.el("svg.graph a.job rect").await.click().await.unwrap();
        let start = std::time::Instant::now();
        while !b.c.current_url().await.unwrap().as_str().ends_with("/jobs/shot") {
            assert!(start.elapsed() < Duration::from_secs(5), "the job's node is a link");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let errors = b.errors().await;
        assert!(errors.is_empty(), "{errors:?}");
        b.close().await;
    });
}
