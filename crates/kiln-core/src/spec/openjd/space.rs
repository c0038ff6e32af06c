//! Task parameter spaces: each definition's range (a list, or for INT a
//! range expression such as `1-100:2`), combined by the step's
//! `combination` expression (`A * B` for every pair, `(A, B)` to pair them
//! in order) into the step's tasks. Tasks are never listed: task `i`'s
//! values are computed from `i` (mixed-radix digits for a product, one
//! index for an association), in Rust for checks and in the generated
//! script on the host, so the script stays small however many tasks.

use super::combination::{Expr, Parser};
use super::fmt::{quote, resolve_now};
use super::model::ParamSpace;
use super::params::{is_identifier, scalar};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;

const MAX_DEFS: usize = 16;
const MAX_LIST: usize = 1024;

/// One task parameter's values: a list, or (INT range expressions) runs
/// of `count` values from `start` by `step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    List(Vec<String>),
    Runs(Vec<Run>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: i64,
    pub step: i64,
    pub count: u64,
}

impl Range {
    pub(super) fn len(&self) -> usize {
        match self {
            Range::List(v) => v.len(),
            Range::Runs(r) => r.iter().map(|r| r.count as usize).sum(),
        }
    }

    /// The `k`th value (0-based).
    #[cfg(test)]
    pub fn get(&self, mut k: usize) -> String {
        match self {
            Range::List(v) => v[k].clone(),
            Range::Runs(runs) => {
                for r in runs {
                    if (k as u64) < r.count {
                        return (r.start + k as i64 * r.step).to_string();
                    }
                    k -= r.count as usize;
                }
                unreachable!("index past the range")
            }
        }
    }
}

/// A step's tasks: its parameter names, their ranges, how they combine.
#[derive(Debug)]
pub struct Tasks {
    pub names: Vec<String>,
    ranges: Vec<Range>,
    expr: Option<Expr>,
    pub count: usize,
}

impl Tasks {
    /// Task `i`'s values (0-based), one per name: what the script's
    /// arithmetic must give, checked against it in the tests.
    #[cfg(test)]
    pub fn row(&self, i: usize) -> Vec<String> {
        let mut row = vec![String::new(); self.names.len()];
        if let Some(e) = &self.expr {
            e.fill(i, &self.ranges, &mut row);
        }
        row
    }

    /// Bash that sets `t0`, `t1`, ... to task `$i`'s values (`i` 0-based).
    pub fn script(&self) -> String {
        let mut out = String::new();
        for (p, r) in self.ranges.iter().enumerate() {
            match r {
                Range::List(v) => {
                    let items: Vec<String> = v.iter().map(|x| quote(x)).collect();
                    out.push_str(&format!("r{p}=({})\n", items.join(" ")));
                }
                Range::Runs(runs) => {
                    let items: Vec<String> = runs
                        .iter()
                        .map(|r| format!("{},{},{}", r.start, r.step, r.count))
                        .collect();
                    out.push_str(&format!("r{p}='{}'\n", items.join(" ")));
                }
            }
        }
        if let Some(e) = &self.expr {
            let mut n = 0;
            e.bash("$i", &self.ranges, &mut n, &mut out);
        }
        out
    }
}

/// Expands a step's parameter space; `at` is the step's field path.
pub fn expand(
    at: &str,
    space: Option<&ParamSpace>,
    params: &BTreeMap<String, String>,
    max_tasks: usize,
) -> Result<Tasks> {
    let Some(space) = space else {
        return Ok(Tasks {
            names: vec![],
            ranges: vec![],
            expr: None,
            count: 1,
        });
    };
    let at = format!("{at}.parameterSpace");
    let defs = &space.task_parameter_definitions;
    if defs.is_empty() || defs.len() > MAX_DEFS {
        return Err(Error::spec(
            format!("{at}.taskParameterDefinitions"),
            format!("has {} definitions; give 1 to {MAX_DEFS}", defs.len()),
        ));
    }
    let mut names: Vec<String> = Vec::new();
    let mut ranges: Vec<Range> = Vec::new();
    for (i, d) in defs.iter().enumerate() {
        let f = format!("{at}.taskParameterDefinitions[{i}]");
        if !is_identifier(&d.name) {
            return Err(Error::spec(format!("{f}.name"), format!("{:?} is not a parameter name; use letters, digits or '_', not starting with a digit", d.name)));
        }
        if names.contains(&d.name) {
            return Err(Error::spec(
                format!("{f}.name"),
                format!("{:?} is defined twice in this step", d.name),
            ));
        }
        let range = match d.kind.as_str() {
            "INT" => int_range(&format!("{f}.range"), &d.range, params, max_tasks)?,
            "FLOAT" | "STRING" | "PATH" => Range::List(list(&format!("{f}.range"), &d.kind, &d.range, params)?),
            "CHUNK[INT]" => return Err(Error::spec(format!("{f}.type"), "CHUNK[INT] needs the TASK_CHUNKING extension, which Kiln does not support yet; use INT (and Kiln's chunking is not available through templates)")),
            k => return Err(Error::spec(format!("{f}.type"), format!("{k:?} is not a task parameter type; use INT, FLOAT, STRING or PATH"))),
        };
        names.push(d.name.clone());
        ranges.push(range);
    }
    let expr = match &space.combination {
        Some(c) => Parser::new(&format!("{at}.combination"), c, &names).parse()?,
        None => Expr::Product((0..names.len()).map(Expr::Param).collect()),
    };
    let field = format!("{at}.combination");
    let n = expr.count(&field, &ranges)?;
    if n > max_tasks {
        return Err(Error::spec(
            field,
            format!("makes {n} tasks; a step may have at most {max_tasks}"),
        ));
    }
    Ok(Tasks {
        names,
        ranges,
        expr: Some(expr),
        count: n,
    })
}

/// An INT range: a list of integers, or a range expression.
fn int_range(
    f: &str,
    range: &Value,
    params: &BTreeMap<String, String>,
    max: usize,
) -> Result<Range> {
    if let Some(text) = range.as_str() {
        let text = resolve_now(f, text, params)?;
        return Ok(Range::Runs(range_expr(f, &text, max)?));
    }
    Ok(Range::List(list(f, "INT", range, params)?))
}

/// A range expression: `1-10:2,20,30-25:-1`; values may not repeat.
pub fn range_expr(f: &str, text: &str, max: usize) -> Result<Vec<Run>> {
    let bad = |m: String| {
        Error::spec(f, format!("{text:?} is not a range expression: {m}; write e.g. \"1-100\", \"1-100:2\" or \"1,5,10-20\""))
    };
    let mut out: Vec<Run> = Vec::new();
    let mut total = 0u64;
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad("an item is empty".into()));
        }
        let (span, step) = match item.split_once(':') {
            Some((s, st)) => (
                s.trim(),
                Some(
                    st.trim()
                        .parse::<i64>()
                        .map_err(|_| bad(format!("{st:?} is not a step")))?,
                ),
            ),
            None => (item, None),
        };
        // The dash between the ends comes after the first character (which
        // may be the sign of the start).
        let (a, b) = match span[1..].find('-') {
            Some(k) => (span[..=k].trim(), span[k + 2..].trim()),
            None => (span, span),
        };
        let num = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| bad(format!("{s:?} is not an integer")))
        };
        let (a, b) = (num(a)?, num(b)?);
        if a == b && step.is_some() && !span[1..].contains('-') {
            return Err(bad(format!("{item:?} has a step but no range")));
        }
        let step = step.unwrap_or(if a <= b { 1 } else { -1 });
        if step == 0 || (b - a).signum() * step.signum() < 0 {
            return Err(bad(format!(
                "the step {step} does not lead from {a} to {b}"
            )));
        }
        let n = ((b - a) / step) as u64 + 1;
        total += n;
        if total > max as u64 {
            return Err(Error::spec(
                f,
                format!("{text:?} has more than {max} values"),
            ));
        }
        out.push(Run {
            start: a,
            step,
            count: n,
        });
    }
    // Bounded by `max` above, so listing them to find a repeat is cheap.
    let mut sorted: Vec<i64> = out
        .iter()
        .flat_map(|r| (0..r.count as i64).map(move |k| r.start + k * r.step))
        .collect();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("{} appears twice (ranges overlap)", w[0])));
    }
    Ok(out)
}

/// A list range of `kind` values, each item possibly a format string.
fn list(
    f: &str,
    kind: &str,
    range: &Value,
    params: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let Some(items) = range.as_array() else {
        let what = if kind == "INT" {
            "a list or a range expression such as \"1-100\""
        } else {
            "a list of values"
        };
        return Err(Error::spec(f, format!("must be {what}")));
    };
    if items.is_empty() || items.len() > MAX_LIST {
        return Err(Error::spec(
            f,
            format!("has {} values; give 1 to {MAX_LIST}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items.iter().enumerate() {
        let fk = format!("{f}[{k}]");
        let text = match (kind, v) {
            ("STRING" | "PATH", Value::String(s)) => s.clone(),
            ("INT" | "FLOAT", v) if scalar(v).is_some() => scalar(v).unwrap_or_default(),
            _ => return Err(Error::spec(fk, format!("is not a {kind} value"))),
        };
        let text = resolve_now(&fk, &text, params)?;
        let ok = match kind {
            "INT" => text.trim().parse::<i64>().is_ok(),
            "FLOAT" => text.trim().parse::<f64>().is_ok_and(f64::is_finite),
            _ => true,
        };
        if !ok {
            return Err(Error::spec(
                fk,
                format!(
                    "{text:?} is not a{} {kind} value",
                    if kind == "INT" { "n" } else { "" }
                ),
            ));
        }
        let text = if kind == "INT" {
            text.trim().parse::<i64>().unwrap_or_default().to_string()
        } else {
            text
        };
        out.push(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::openjd::model::{ParamSpace, TaskParamDef};
    use serde_json::json;

    fn space(defs: &[(&str, &str, Value)], combination: Option<&str>) -> ParamSpace {
        ParamSpace {
            task_parameter_definitions: defs
                .iter()
                .map(|(n, k, r)| TaskParamDef {
                    name: n.to_string(),
                    kind: k.to_string(),
                    range: r.clone(),
                })
                .collect(),
            combination: combination.map(str::to_owned),
        }
    }

    /// Every task's values as the generated bash computes them.
    fn by_bash(t: &Tasks) -> Vec<Vec<String>> {
        let echo: Vec<String> = (0..t.names.len()).map(|p| format!("$t{p}")).collect();
        let script = format!(
            "for i in $(seq 0 {}); do\n{}echo \"{}\"\ndone",
            t.count - 1,
            t.script(),
            echo.join("|")
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("bash");
        assert!(out.status.success(), "{script}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn the_script_computes_each_task_as_the_spec_combines_them() {
        let params = BTreeMap::new();
        let cases = [
            space(
                &[
                    ("F", "INT", json!("1-9:4, 20, 12-10")),
                    ("C", "STRING", json!(["a b", "it's"])),
                    ("L", "FLOAT", json!([1.5, "2"])),
                    ("P", "PATH", json!(["/x", "/y", "/z"])),
                ],
                None,
            ),
            space(
                &[
                    ("F", "INT", json!("1-3")),
                    ("C", "STRING", json!(["a", "b"])),
                    ("L", "FLOAT", json!([1.5, "2"])),
                ],
                Some("F * (C, L)"),
            ),
            space(
                &[
                    ("A", "INT", json!([1, 2, 3, 4, 5, 6])),
                    ("B", "INT", json!("10-12")),
                    ("C", "STRING", json!(["x", "y"])),
                ],
                Some("(A, B * C)"),
            ),
        ];
        for s in &cases {
            let t = expand("steps[0]", Some(s), &params, 1000).unwrap();
            let rust: Vec<Vec<String>> = (0..t.count).map(|i| t.row(i)).collect();
            assert_eq!(by_bash(&t), rust);
            let distinct: std::collections::BTreeSet<_> = rust.iter().collect();
            assert_eq!(distinct.len(), t.count, "{rust:?}");
        }
        let t = expand("steps[0]", Some(&cases[1]), &params, 1000).unwrap();
        assert_eq!(t.count, 6);
        assert_eq!(t.row(0), ["1", "a", "1.5"]);
        assert_eq!(t.row(1), ["1", "b", "2"]);
        assert_eq!(t.row(5), ["3", "b", "2"]);
        let t = expand("steps[0]", Some(&cases[0]), &params, 1000).unwrap();
        assert_eq!(t.count, 7 * 2 * 2 * 3);
        assert_eq!(t.row(0), ["1", "a b", "1.5", "/x"]);
    }

    #[test]
    fn a_million_tasks_make_a_small_script() {
        let s = space(&[("F", "INT", json!("1-1000000"))], None);
        let t = expand("steps[0]", Some(&s), &BTreeMap::new(), 1_000_000).unwrap();
        assert_eq!(t.count, 1_000_000);
        assert!(t.script().len() < 1000, "{}", t.script());
        assert_eq!(t.row(999_999), ["1000000"]);
    }
}
