//! Task parameter spaces: each definition's range (a list, or for INT a
//! range expression such as `1-100:2`), combined by the step's
//! `combination` expression (`A * B` for every pair, `(A, B)` to pair them
//! in order) into the list of the step's tasks.

use super::fmt::resolve_now;
use super::model::ParamSpace;
use super::params::{is_identifier, scalar};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;

const MAX_DEFS: usize = 16;
const MAX_LIST: usize = 1024;

/// A step's tasks: its parameter names, and for each task one value per name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tasks {
    pub names: Vec<String>,
    pub values: Vec<Vec<String>>,
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
            values: vec![vec![]],
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
    let mut ranges: Vec<Vec<String>> = Vec::new();
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
            "FLOAT" | "STRING" | "PATH" => list(&format!("{f}.range"), &d.kind, &d.range, params)?,
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
    let mut values = Vec::with_capacity(n);
    for combo in expr.eval(&ranges) {
        let mut row = vec![String::new(); names.len()];
        for (p, v) in combo {
            row[p] = ranges[p][v].clone();
        }
        values.push(row);
    }
    Ok(Tasks { names, values })
}

/// An INT range: a list of integers, or a range expression.
fn int_range(
    f: &str,
    range: &Value,
    params: &BTreeMap<String, String>,
    max: usize,
) -> Result<Vec<String>> {
    if let Some(text) = range.as_str() {
        let text = resolve_now(f, text, params)?;
        return range_expr(f, &text, max);
    }
    let items = list(f, "INT", range, params)?;
    Ok(items)
}

/// A range expression: `1-10:2,20,30-25:-1`; values may not repeat.
pub fn range_expr(f: &str, text: &str, max: usize) -> Result<Vec<String>> {
    let bad = |m: String| {
        Error::spec(f, format!("{text:?} is not a range expression: {m}; write e.g. \"1-100\", \"1-100:2\" or \"1,5,10-20\""))
    };
    let mut out: Vec<i64> = Vec::new();
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
        if out.len() as u64 + n > max as u64 {
            return Err(Error::spec(
                f,
                format!("{text:?} has more than {max} values"),
            ));
        }
        out.extend((0..n as i64).map(|k| a + k * step));
    }
    let mut sorted = out.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("{} appears twice (ranges overlap)", w[0])));
    }
    Ok(out.iter().map(i64::to_string).collect())
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

/// A combination expression.
#[derive(Debug)]
enum Expr {
    Param(usize),
    Product(Vec<Expr>),
    Zip(Vec<Expr>),
}

impl Expr {
    fn count(&self, f: &str, ranges: &[Vec<String>]) -> Result<usize> {
        Ok(match self {
            Expr::Param(p) => ranges[*p].len(),
            Expr::Product(xs) => {
                let mut n: usize = 1;
                for x in xs {
                    n = n.saturating_mul(x.count(f, ranges)?);
                }
                n
            }
            Expr::Zip(xs) => {
                let counts = xs
                    .iter()
                    .map(|x| x.count(f, ranges))
                    .collect::<Result<Vec<_>>>()?;
                if counts.windows(2).any(|w| w[0] != w[1]) {
                    return Err(Error::spec(f, format!("an association (A, B) needs ranges of one length; these have {counts:?} values")));
                }
                counts[0]
            }
        })
    }

    /// Each task as (parameter, index into its range) pairs; the last
    /// factor of a product varies fastest.
    fn eval(&self, ranges: &[Vec<String>]) -> Vec<Vec<(usize, usize)>> {
        match self {
            Expr::Param(p) => (0..ranges[*p].len()).map(|v| vec![(*p, v)]).collect(),
            Expr::Product(xs) => {
                let mut acc = vec![vec![]];
                for x in xs {
                    let part = x.eval(ranges);
                    let mut next = Vec::with_capacity(acc.len() * part.len());
                    for a in &acc {
                        for b in &part {
                            next.push([a.clone(), b.clone()].concat());
                        }
                    }
                    acc = next;
                }
                acc
            }
            Expr::Zip(xs) => {
                let parts: Vec<_> = xs.iter().map(|x| x.eval(ranges)).collect();
                (0..parts[0].len())
                    .map(|i| parts.iter().flat_map(|p| p[i].clone()).collect())
                    .collect()
            }
        }
    }
}

struct Parser<'a> {
    f: &'a str,
    text: &'a str,
    toks: Vec<String>,
    pos: usize,
    names: &'a [String],
    seen: Vec<bool>,
}

impl<'a> Parser<'a> {
    fn new(f: &'a str, text: &'a str, names: &'a [String]) -> Self {
        let mut toks = Vec::new();
        let mut word = String::new();
        for c in text.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                toks.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                toks.push(c.to_string());
            }
        }
        if !word.is_empty() {
            toks.push(word);
        }
        Parser {
            f,
            text,
            toks,
            pos: 0,
            names,
            seen: vec![false; names.len()],
        }
    }

    fn err(&self, m: impl std::fmt::Display) -> Error {
        Error::spec(
            self.f,
            format!(
                "{:?}: {m}; write e.g. \"Frame * Layer\" or \"(Frame, Camera) * Layer\"",
                self.text
            ),
        )
    }

    fn parse(mut self) -> Result<Expr> {
        let e = self.product()?;
        if let Some(t) = self.toks.get(self.pos) {
            return Err(self.err(format!("unexpected {t:?}")));
        }
        if let Some(k) = self.seen.iter().position(|s| !s) {
            return Err(self.err(format!(
                "leaves out the task parameter {}; name each exactly once",
                self.names[k]
            )));
        }
        Ok(e)
    }

    fn product(&mut self) -> Result<Expr> {
        let mut xs = vec![self.term()?];
        while self.toks.get(self.pos).map(String::as_str) == Some("*") {
            self.pos += 1;
            xs.push(self.term()?);
        }
        Ok(if xs.len() == 1 {
            xs.remove(0)
        } else {
            Expr::Product(xs)
        })
    }

    fn term(&mut self) -> Result<Expr> {
        let Some(t) = self.toks.get(self.pos).cloned() else {
            return Err(self.err("ends too early"));
        };
        self.pos += 1;
        if t == "(" {
            let mut xs = vec![self.product()?];
            while self.toks.get(self.pos).map(String::as_str) == Some(",") {
                self.pos += 1;
                xs.push(self.product()?);
            }
            if self.toks.get(self.pos).map(String::as_str) != Some(")") {
                return Err(self.err("a '(' is not closed"));
            }
            self.pos += 1;
            return Ok(if xs.len() == 1 {
                xs.remove(0)
            } else {
                Expr::Zip(xs)
            });
        }
        match self.names.iter().position(|n| *n == t) {
            Some(k) if self.seen[k] => Err(self.err(format!("names {t} twice"))),
            Some(k) => {
                self.seen[k] = true;
                Ok(Expr::Param(k))
            }
            None => Err(self.err(format!("{t:?} is not a task parameter of this step"))),
        }
    }
}
