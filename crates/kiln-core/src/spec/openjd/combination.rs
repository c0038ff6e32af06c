//! Combination expressions of a step's parameter space: `A * B` (every
//! pair, the last factor varying fastest) and `(A, B)` (equal-length ranges
//! taken in step), nested freely; and task `i`'s place in each range.

use super::space::Range;
use crate::error::{Error, Result};

/// A combination expression.
#[derive(Debug)]
pub(super) enum Expr {
    Param(usize),
    Product(Vec<Expr>),
    Zip(Vec<Expr>),
}

impl Expr {
    pub(super) fn count(&self, f: &str, ranges: &[Range]) -> Result<usize> {
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

    #[cfg(test)]
    /// Task `i`'s values into `row`: a product's last factor varies
    /// fastest; an association's parts all take the same index.
    pub(super) fn fill(&self, i: usize, ranges: &[Range], row: &mut [String]) {
        match self {
            Expr::Param(p) => row[*p] = ranges[*p].get(i),
            Expr::Product(xs) => {
                let mut rest = i;
                for x in xs.iter().rev() {
                    let c = x.size(ranges);
                    x.fill(rest % c, ranges, row);
                    rest /= c;
                }
            }
            Expr::Zip(xs) => xs.iter().for_each(|x| x.fill(i, ranges, row)),
        }
    }

    /// How many tasks, once [`Expr::count`] has checked the expression.
    pub(super) fn size(&self, ranges: &[Range]) -> usize {
        match self {
            Expr::Param(p) => ranges[*p].len(),
            Expr::Product(xs) => xs.iter().map(|x| x.size(ranges)).product(),
            Expr::Zip(xs) => xs[0].size(ranges),
        }
    }

    /// [`Expr::fill`] in bash: `idx` is an arithmetic expression; `n`
    /// numbers the helper variables.
    pub(super) fn bash(&self, idx: &str, ranges: &[Range], n: &mut usize, out: &mut String) {
        match self {
            Expr::Param(p) => match &ranges[*p] {
                Range::List(_) => out.push_str(&format!("t{p}=${{r{p}[{idx}]}}\n")),
                Range::Runs(_) => out.push_str(&format!(
                    "k=$(( {idx} )); for run in $r{p}; do IFS=, read -r a s c <<< \"$run\"; \
                     if [ \"$k\" -lt \"$c\" ]; then t{p}=$(( a + k * s )); break; fi; k=$(( k - c )); done\n"
                )),
            },
            Expr::Product(xs) => {
                let v = format!("i{}", *n);
                *n += 1;
                out.push_str(&format!("{v}=$(( {idx} ))\n"));
                for x in xs.iter().rev() {
                    let c = x.size(ranges);
                    let sub = format!("i{}", *n);
                    *n += 1;
                    out.push_str(&format!("{sub}=$(( {v} % {c} )); {v}=$(( {v} / {c} ))\n"));
                    x.bash(&format!("${sub}"), ranges, n, out);
                }
            }
            Expr::Zip(xs) => xs.iter().for_each(|x| x.bash(idx, ranges, n, out)),
        }
    }
}

pub(super) struct Parser<'a> {
    f: &'a str,
    text: &'a str,
    toks: Vec<String>,
    pos: usize,
    names: &'a [String],
    seen: Vec<bool>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(f: &'a str, text: &'a str, names: &'a [String]) -> Self {
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

    pub(super) fn parse(mut self) -> Result<Expr> {
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
