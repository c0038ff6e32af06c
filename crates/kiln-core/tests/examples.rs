//! Every spec under examples/ is valid, so the docs never point at a
//! broken example.

use kiln_core::spec::{parse_and_validate, Format, SubmitContext};
use std::path::Path;

fn specs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            specs(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "json") {
            out.push(p);
        }
    }
}

#[test]
fn every_example_spec_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut found = Vec::new();
    specs(&root, &mut found);
    assert!(found.len() >= 8, "examples found: {found:?}");
    for p in found {
        let text = std::fs::read_to_string(&p).unwrap();
        let ctx = SubmitContext {
            user: "tester".into(),
            base_dir: Some(p.parent().unwrap().display().to_string()),
            ..SubmitContext::default()
        };
        if let Err(e) = parse_and_validate(&text, Format::Auto, &ctx) {
            panic!("{}: {e}", p.display());
        }
    }
}
