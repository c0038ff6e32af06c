//! Unit tests of the log formatting; running real frames is covered by
//! `tests/runner.rs`.

use super::logfile::{display_command, human_kb, rfc3339, secs};
use kiln_core::model::Command;
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn formats_times() {
    let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(1_795_428_000), "2026-11-23T10:00:00Z");
    assert_eq!(at(951_868_799), "2000-02-29T23:59:59Z");
    assert_eq!(secs(Duration::from_secs(10)), "10s");
    assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
}

#[test]
fn formats_sizes_and_commands() {
    assert_eq!(human_kb(512), "512K");
    assert_eq!(human_kb(512 * 1024), "512M");
    assert_eq!(human_kb(1536 * 1024), "1.5G");
    let argv = Command::Argv(vec![
        "render".into(),
        "-f".into(),
        "a b".into(),
        "it's".into(),
    ]);
    assert_eq!(display_command(&argv), r"render -f 'a b' 'it'\''s'");
}
