//! Shared output helpers: aligned tables, times, sizes, JSON.

use comfy_table::{presets, Cell, ContentArrangement, Table};
use kiln_core::size::{format_duration_ms, format_kb};

/// A borderless, aligned table with a header row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(Cell::new));
    t
}

pub fn print_table(t: &Table) {
    let text = t.to_string();
    for line in text.lines() {
        println!("{}", line.trim_end());
    }
}

pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "3m ago", "just now".
pub fn ago(ms: i64) -> String {
    let d = (now_ms() - ms).max(0) as u64;
    if d < 2_000 {
        "just now".into()
    } else {
        format!("{} ago", format_duration_ms(d - d % 1000))
    }
}

pub fn opt_duration(ms: Option<u64>) -> String {
    ms.map(format_duration_ms).unwrap_or_else(|| "-".into())
}

pub fn kb(kb: u64) -> String {
    if kb == 0 {
        "-".into()
    } else {
        format_kb(kb)
    }
}

pub fn cores(centi: u32) -> String {
    if centi.is_multiple_of(100) {
        format!("{}", centi / 100)
    } else {
        format!("{:.2}", centi as f64 / 100.0)
    }
}
