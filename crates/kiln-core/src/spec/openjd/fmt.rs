//! OpenJD format strings (`{{Param.Frame}}`): read into literal text and
//! references, resolved either when the job is made (job parameters) or on
//! the host (task parameters, files, the session's directory), where they
//! become shell words.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// One piece of a resolved format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    /// A shell variable of the generated script (`t0`, `wd`).
    Var(String),
}

/// What a format string may refer to where it stands.
#[derive(Debug)]
pub struct Scope<'a> {
    /// Job parameter values, already checked (`Param.*` and `RawParam.*`).
    pub params: &'a BTreeMap<String, String>,
    /// Task parameter names, in the order of their script variables.
    pub task_params: Option<&'a [String]>,
    /// `Task.File.*`: name -> path under the session directory.
    pub task_files: Option<&'a BTreeMap<String, String>>,
    /// `Env.File.*`: name -> path under the session directory.
    pub env_files: Option<&'a BTreeMap<String, String>>,
    /// Whether `Session.*` is known (host-side fields).
    pub session: bool,
}

impl<'a> Scope<'a> {
    /// Only the job's parameters.
    pub fn new(params: &'a BTreeMap<String, String>) -> Self {
        Scope {
            params,
            task_params: None,
            task_files: None,
            env_files: None,
            session: false,
        }
    }
}

/// Splits `text` at its `{{ ... }}` and resolves each reference.
pub fn resolve(field: &str, text: &str, scope: &Scope) -> Result<Vec<Part>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Part::Lit(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(Error::spec(
                field,
                format!("{text:?} opens `{{{{` without closing it: write `{{{{Param.Name}}}}`"),
            ));
        };
        let name = after[..close].trim();
        out.extend(reference(field, name, scope)?);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Part::Lit(rest.to_owned()));
    }
    // Adjacent literals (a job parameter's value among text) as one.
    let mut merged: Vec<Part> = Vec::with_capacity(out.len());
    for p in out {
        match (merged.last_mut(), p) {
            (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    Ok(merged)
}

/// Resolves a string that must be known when the job is made.
pub fn resolve_now(field: &str, text: &str, params: &BTreeMap<String, String>) -> Result<String> {
    let scope = Scope::new(params);
    let mut s = String::new();
    for p in resolve(field, text, &scope)? {
        match p {
            Part::Lit(l) => s.push_str(&l),
            Part::Var(_) => unreachable!("no host values in this scope"),
        }
    }
    Ok(s)
}

fn reference(field: &str, name: &str, scope: &Scope) -> Result<Vec<Part>> {
    let unknown = |what: &str| {
        Error::spec(
            field,
            format!(
                "{{{{{name}}}}} {what}; this field may use {}",
                allowed(scope)
            ),
        )
    };
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        ["Param" | "RawParam", p] => match scope.params.get(*p) {
            Some(v) => Ok(vec![Part::Lit(v.clone())]),
            None => Err(unknown("names no job parameter")),
        },
        ["Task", "Param" | "RawParam", p] => match scope.task_params {
            Some(names) => match names.iter().position(|n| n == p) {
                Some(i) => Ok(vec![Part::Var(format!("t{i}"))]),
                None => Err(unknown("names no task parameter of this step")),
            },
            None => Err(unknown("is not known here")),
        },
        ["Task", "File", f] => {
            file(scope.task_files, f).ok_or_else(|| unknown("names no file of this step's script"))
        }
        ["Env", "File", f] => {
            file(scope.env_files, f).ok_or_else(|| unknown("names no file of this environment"))
        }
        ["Session", "WorkingDirectory"] if scope.session => Ok(vec![Part::Var("wd".into())]),
        ["Session", "PathMappingRulesFile"] if scope.session => Ok(vec![
            Part::Var("wd".into()),
            Part::Lit("/path-mapping.json".into()),
        ]),
        // Kiln maps no paths: PATH values reach the task as they were given.
        ["Session", "HasPathMappingRules"] if scope.session => Ok(vec![Part::Lit("false".into())]),
        _ => Err(unknown("is not a value OpenJD 2023-09 knows here")),
    }
}

fn file(files: Option<&BTreeMap<String, String>>, name: &str) -> Option<Vec<Part>> {
    let path = files?.get(name)?;
    Some(vec![Part::Var("wd".into()), Part::Lit(format!("/{path}"))])
}

fn allowed(scope: &Scope) -> String {
    let mut a = vec!["Param.NAME", "RawParam.NAME"];
    if scope.task_params.is_some() {
        a.extend(["Task.Param.NAME", "Task.RawParam.NAME"]);
    }
    if scope.task_files.is_some() {
        a.push("Task.File.NAME");
    }
    if scope.env_files.is_some() {
        a.push("Env.File.NAME");
    }
    if scope.session {
        a.extend([
            "Session.WorkingDirectory",
            "Session.HasPathMappingRules",
            "Session.PathMappingRulesFile",
        ]);
    }
    a.join(", ")
}

/// One shell word for `parts`: literals in single quotes, variables in
/// double quotes, so nothing in a value is ever split or expanded. A `#`
/// is written outside the quotes, escaped, so that no text of the
/// template reads as one of Kiln's `#FRAME#` command tokens.
pub fn shell_word(parts: &[Part]) -> String {
    if parts.is_empty() {
        return "''".into();
    }
    let mut w = String::new();
    for p in parts {
        match p {
            Part::Lit(l) => w.push_str(&quote(l)),
            Part::Var(v) => {
                w.push_str("\"${");
                w.push_str(v);
                w.push_str("}\"");
            }
        }
    }
    w
}

/// Single-quotes `s` for the shell (see [`shell_word`] for `#`).
pub fn quote(s: &str) -> String {
    let mut w = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => w.push_str("'\\''"),
            '#' => w.push_str("'\\#'"),
            c => w.push(c),
        }
    }
    w.push('\'');
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_by_scope() {
        let params = BTreeMap::from([("Scene".to_string(), "/x y.blend".to_string())]);
        let names = vec!["Frame".to_string()];
        let scope = Scope {
            params: &params,
            task_params: Some(&names),
            session: true,
            ..Scope::new(&params)
        };
        let parts = resolve(
            "f",
            "-s {{ Param.Scene }} -f {{Task.Param.Frame}} {{Session.WorkingDirectory}}",
            &scope,
        )
        .unwrap();
        assert_eq!(
            shell_word(&parts),
            "'-s /x y.blend -f '\"${t0}\"' '\"${wd}\""
        );
        let e = resolve("steps[0].x", "{{Task.Param.Nope}}", &scope).unwrap_err();
        assert!(e.to_string().contains("steps[0].x"), "{e}");
        assert!(e.to_string().contains("names no task parameter"), "{e}");
        let e = resolve_now("name", "{{Task.Param.Frame}}", &params).unwrap_err();
        assert!(e.to_string().contains("is not known here"), "{e}");
        let e = resolve_now("name", "a {{Param.Scene", &params).unwrap_err();
        assert!(e.to_string().contains("without closing"), "{e}");
        assert_eq!(
            resolve_now("name", "r {{RawParam.Scene}}", &params).unwrap(),
            "r /x y.blend"
        );
    }

    #[test]
    fn quoting_survives_the_shell_and_hides_tokens() {
        assert_eq!(quote("it's #FRAME#"), "'it'\\''s '\\#'FRAME'\\#''");
    }
}
