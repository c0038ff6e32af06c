//! Runs a scenario file and prints its report, until `kiln simulate` does:
//! `cargo run --release -p kiln-sim --example simulate -- sim/shares.yaml [--json] [--scale F]`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let scale = args
        .iter()
        .position(|a| a == "--scale")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok());
    let Some(path) = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<f64>().is_err())
    else {
        eprintln!("usage: simulate SCENARIO.yaml [--json] [--scale F]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = kiln_sim::Scenario::parse(&text).and_then(|s| match scale {
        Some(f) => kiln_sim::run(&s.scaled(f)),
        None => kiln_sim::run(&s),
    });
    match result {
        Ok(r) if json => println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("serialisable")
        ),
        Ok(r) => print!("{}", r.to_text()),
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
