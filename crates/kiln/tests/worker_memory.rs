//! The worker's memory, with the real binary: it idles small, fresh and
//! after work; a frame that writes hundreds of MB of log does not swell it,
//! the log reaches the server byte for byte, and the per-frame cap cuts it
//! with a note while the frame goes on.

mod common;

use common::*;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The worker's peak resident memory may not pass this, whatever the log.
const PEAK_RSS_KB: u64 = 64 * 1024;

/// `seq 1 N` as bytes, from the start, `len` of them at a time.
struct Seq {
    next: u64,
    pending: Vec<u8>,
}

impl Seq {
    fn new() -> Seq {
        Seq {
            next: 1,
            pending: Vec::new(),
        }
    }

    fn take(&mut self, len: usize) -> Vec<u8> {
        while self.pending.len() < len {
            self.pending
                .extend_from_slice(format!("{}\n", self.next).as_bytes());
            self.next += 1;
        }
        let rest = self.pending.split_off(len);
        std::mem::replace(&mut self.pending, rest)
    }
}

/// Reads the header (through its closing `===` line) off a log.
fn skip_header(r: &mut impl Read) -> usize {
    let mut header = Vec::new();
    let mut b = [0u8];
    while !header.ends_with(b"\n===\n") {
        r.read_exact(&mut b).expect("log header");
        header.push(b[0]);
    }
    header.len()
}

/// Asserts the next `len` bytes of `r` are `seq`'s next `len`.
fn assert_seq(r: &mut impl Read, seq: &mut Seq, len: usize) {
    let mut done = 0;
    let mut buf = vec![0u8; 1 << 20];
    while done < len {
        let n = buf.len().min(len - done);
        r.read_exact(&mut buf[..n]).expect("log as long as written");
        assert!(
            buf[..n] == seq.take(n)[..],
            "log differs from what the frame wrote within bytes {done}..{}",
            done + n
        );
        done += n;
    }
}

/// The one log file under `dir` (a farm with one frame has one).
fn only_log(dir: &Path) -> PathBuf {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                found.push(p);
            }
        }
    }
    assert_eq!(found.len(), 1, "one log under {}: {found:?}", dir.display());
    found.pop().unwrap()
}

/// A figure from `/proc/<pid>/status`, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn peak_rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmHWM")
}

/// The worker's own heap and stacks: what the allocator's settings decide.
/// (Its code pages, the rest of its RSS, depend on the build: the 8 MB
/// target for the whole is measured on the release binary by
/// `bench/targets.sh`.)
const IDLE_ANON_KB: u64 = 3 * 1024;

#[test]
fn an_idle_worker_keeps_little_memory_of_its_own_fresh_and_after_work() {
    let farm = Farm::start(1, 4);
    std::thread::sleep(Duration::from_secs(1));
    let pid = farm.workers[0].id();
    let fresh = status_kb(pid, "RssAnon");
    let job = farm.submit(
        "many",
        "name: many\nlayers:\n  - name: a\n    command: [/bin/true]\n    frames: 1-300\n    memory: 64M\n",
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let after = status_kb(pid, "RssAnon");
    eprintln!("worker RssAnon: {fresh} kB fresh, {after} kB after 300 frames");
    assert!(
        fresh <= IDLE_ANON_KB,
        "a fresh worker holds {fresh} kB of anonymous memory"
    );
    assert!(
        after <= IDLE_ANON_KB,
        "after 300 frames the worker holds {after} kB of anonymous memory"
    );
}

#[test]
fn a_200_mb_log_reaches_the_server_byte_exact_and_the_worker_stays_small() {
    const SIZE: usize = 200_000_000;
    let farm = Farm::start(1, 1);
    let job = farm.submit(
        "big",
        &format!(
            "name: big\nlayers:\n  - name: a\n    command: [sh, -c, 'seq 1 100000000 | head -c {SIZE}']\n    frames: 1\n"
        ),
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(180));
    let peak = peak_rss_kb(farm.workers[0].id());
    eprintln!("worker VmHWM after a 200 MB log: {peak} kB");

    let path = only_log(&farm.path("data/logs"));
    let mut r = BufReader::new(File::open(&path).unwrap());
    let header = skip_header(&mut r);
    assert_seq(&mut r, &mut Seq::new(), SIZE);
    let mut footer = String::new();
    r.read_to_string(&mut footer).unwrap();
    assert!(
        footer.starts_with("=== kiln frame ended\nexit status: 0\n"),
        "the footer follows the output at once: {footer}"
    );
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    assert_eq!(size, header + SIZE + footer.len());
    assert!(
        peak <= PEAK_RSS_KB,
        "the worker peaked at {peak} kB shipping a 200 MB log (bound {PEAK_RSS_KB} kB)"
    );
}

#[test]
fn a_log_past_the_cap_is_cut_with_a_note_and_the_frame_goes_on() {
    const CAP: usize = 10 << 20;
    let mut farm = Farm::start(0, 1);
    farm.add_worker_with(
        "w0",
        1,
        &["--allow-root", "--run-as-self", "--log-cap", "10M"],
    );
    farm.wait_hosts(1);
    let written = farm.path("written");
    let job = farm.submit(
        "capped",
        &format!(
            "name: capped\nlayers:\n  - name: a\n    command: [sh, -c, 'seq 1 10000000 | head -c 40000000; touch {}; sleep 3; echo after-the-cap']\n    frames: 1\n",
            written.display()
        ),
    );
    // The frame wrote 4 times the cap and sleeps: its local log is cut back.
    wait_until(Duration::from_secs(60), || written.exists());
    let local = only_log(&farm.path("work-w0/logs"));
    wait_until(Duration::from_secs(2), || {
        std::fs::metadata(&local).map_or(0, |m| m.len()) <= CAP as u64
    });
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    let peak = peak_rss_kb(farm.workers[0].id());

    let path = only_log(&farm.path("data/logs"));
    let mut r = BufReader::new(File::open(&path).unwrap());
    let header = skip_header(&mut r);
    assert_seq(&mut r, &mut Seq::new(), CAP - header);
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    let note = "[kiln] log truncated at 10 MiB by the worker's --log-cap; the frame goes on\n";
    assert!(
        rest.starts_with(&format!("\n{note}")) || rest.starts_with(note),
        "the note follows the cap: {rest}"
    );
    let footer = &rest[rest.find(note).unwrap() + note.len()..];
    assert!(
        footer.starts_with("=== kiln frame ended\nexit status: 0\n"),
        "then the footer, nothing of what the frame wrote past the cap: {rest}"
    );
    assert!(!rest.contains("after-the-cap"), "{rest}");
    assert!(peak <= PEAK_RSS_KB, "worker peaked at {peak} kB");
}

/// The local log of the frame whose output starts with `first`, once it
/// is there.
fn local_log_of(dir: &Path, first: &str) -> PathBuf {
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(first)));
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn a_frame_whose_local_log_is_lost_is_reported_ended_with_what_was_shipped_and_a_note() {
    let farm = Farm::start(1, 2);
    let marks = farm.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let job = farm.submit(
        "lost",
        &format!(
            "name: lost\nlayers:\n  - name: a\n    command: [sh, -c, 'echo frame $KILN_FRAME before; touch {}/$KILN_FRAME; sleep 3; echo frame $KILN_FRAME after']\n    frames: 1-2\n",
            marks.display()
        ),
    );
    wait_until(Duration::from_secs(20), || {
        marks.join("1").exists() && marks.join("2").exists()
    });
    // The server has the start of both logs before they go.
    for n in ["1", "2"] {
        wait_until(Duration::from_secs(10), || {
            String::from_utf8_lossy(&farm.try_kiln(&["log", &job, &format!("a/{n}")]).stdout)
                .contains(&format!("frame {n} before"))
        });
    }
    let logs = farm.path("work-w0/logs");
    // Frame 1's log is deleted; frame 2's becomes a directory, which opens
    // but cannot be read (as root, where a mode would not stop a read).
    let deleted = local_log_of(&logs, "frame 1 before");
    let unreadable = local_log_of(&logs, "frame 2 before");
    std::fs::remove_file(&deleted).unwrap();
    std::fs::remove_file(&unreadable).unwrap();
    std::fs::create_dir(&unreadable).unwrap();

    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    let note = "[kiln] the rest of this log could not be read on the worker";
    for n in ["1", "2"] {
        let log = farm.kiln(&["log", &job, &format!("a/{n}")]);
        assert!(log.contains(&format!("frame {n} before")), "kept: {log}");
        assert!(log.contains(note), "the note: {log}");
        assert!(!log.contains(&format!("frame {n} after")), "{log}");
    }
    let worker_log = read(&farm.path("worker-w0.log"));
    assert!(
        worker_log.contains("reporting its end without the rest"),
        "{worker_log}"
    );
}

/// The shared objects mapped into process `pid` whose name contains `part`.
fn mapped(pid: &str, part: &str) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| path.contains(part))
        .map(str::to_owned)
        .collect();
    libs.dedup();
    libs
}

/// A root worker runs frames as their job's user, yet never looks an
/// account up itself: each frame's supervisor does (NSS modules such as
/// libnss_systemd or sssd's stay mapped for good in whoever calls them, and
/// may block on the network). So after running frames as another user and
/// as an unknown one, the daemon has no NSS module mapped.
#[test]
fn a_root_worker_leaves_user_lookups_to_the_frames_supervisors() {
    if unsafe { libc::geteuid() } != 0 {
        skip("user switching needs the worker to run as root");
        return;
    }
    // Whether a lookup loads a module on this host at all (glibc's `files`
    // is built in): if not, the check below proves nothing here.
    let name = c"nobody";
    let mut groups = [0 as libc::gid_t; 64];
    let mut n = groups.len() as libc::c_int;
    unsafe { libc::getgrouplist(name.as_ptr(), 65534, groups.as_mut_ptr(), &mut n) };
    if mapped("self", "libnss_").is_empty() {
        eprintln!("note: this host's NSS loads no module, so a lookup would map nothing");
    }
    // A worker that switches to each job's user, as a root worker does.
    let mut farm = Farm::start(0, 2);
    farm.add_worker_with("w0", 2, &["--allow-root"]);
    farm.wait_hosts(1);
    let worker = farm.workers[0].id().to_string();
    let job = farm.submit(
        "nobody",
        "name: nobody\nuser: nobody\nlayers:\n  - name: a\n    command: 'echo id=$(id -u) USER=$USER HOME=$HOME SHELL=$SHELL; touch here && echo wrote'\n    frames: 1-2\n",
    );
    let ghost = farm.submit(
        "ghost",
        "name: ghost\nuser: kiln-no-such-user\nlayers:\n  - name: a\n    command: 'true'\n    frames: 1\n",
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(30));
    farm.wait_status(&ghost, "FAILED", Duration::from_secs(30));
    let nobody = std::process::Command::new("getent")
        .args(["passwd", "nobody"])
        .output()
        .unwrap();
    let entry = String::from_utf8_lossy(&nobody.stdout);
    let f: Vec<&str> = entry.trim().split(':').collect();
    // The first frame's supervisor looked the account up; the worker kept
    // what it found for the second.
    for frame in ["a/1", "a/2"] {
        let log = farm.kiln(&["log", &job, frame]);
        assert!(
            log.contains(&format!(
                "id={} USER=nobody HOME={} SHELL={}\nwrote\n",
                f[2], f[5], f[6]
            )),
            "ran as nobody, with its account's environment, in a scratch directory it owns: {log}"
        );
    }
    let log = farm.kiln(&["log", &ghost, "a/1"]);
    assert!(
        log.contains("user \"kiln-no-such-user\" does not exist on host"),
        "{log}"
    );
    let nss = mapped(&worker, "libnss_");
    assert!(
        nss.is_empty(),
        "the worker daemon loaded NSS modules: {nss:?}"
    );
}

/// KiB of the worker binary's read-only mappings (its code and constants)
/// resident in process `pid`.
fn binary_resident_kb(pid: u32) -> u64 {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let exe = exe.to_string_lossy();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let (mut ours, mut kb) = (false, 0);
    for line in smaps.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.contains('-') && !w.ends_with(':'))
        {
            ours = words.len() >= 6 && words[5..].join(" ") == exe && !words[1].contains('w');
        } else if ours && words.first() == Some(&"Rss:") {
            kb += words[1].parse::<u64>().unwrap();
        }
    }
    kb
}

/// Once idle for a few seconds, the worker drops the code pages its work
/// mapped (`kiln_worker::trim`): only what its idle loop runs comes back.
/// Then it runs frames as before. (Debug builds map far more code than
/// release ones, so the bound is loose: the release figures are
/// `bench/targets.sh`'s.)
#[test]
fn an_idle_worker_drops_the_code_pages_its_work_mapped_and_runs_on() {
    let farm = Farm::start(1, 4);
    let pid = farm.workers[0].id();
    let job = farm.submit(
        "work",
        "name: work\nlayers:\n  - name: a\n    command: [/bin/true]\n    frames: 1-100\n  - name: b\n    command: 'echo $KILN_FRAME'\n    frames: 1-20\n",
    );
    farm.wait_status(&job, "FINISHED", Duration::from_secs(60));
    let busy = binary_resident_kb(pid);
    // Idle for 5 s, then trimmed once.
    std::thread::sleep(Duration::from_secs(8));
    let idle = binary_resident_kb(pid);
    eprintln!("the worker binary's resident pages: {busy} KiB after work, {idle} KiB idle");
    assert!(
        idle + 1024 <= busy,
        "an idle worker keeps its code mapped: {busy} KiB after work, {idle} KiB idle"
    );
    let again = farm.submit(
        "again",
        "name: again\nlayers:\n  - name: a\n    command: 'echo ran'\n    frames: 1-4\n",
    );
    farm.wait_status(&again, "FINISHED", Duration::from_secs(30));
    assert!(farm.kiln(&["log", &again, "a/4"]).contains("\nran\n"));
}
