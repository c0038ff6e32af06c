//! Job parameters: each definition's value (given, or its default) checked
//! against its type and constraints, as text ready for format strings.

use super::model::ParamDef;
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;

/// The specification's limits on job parameters.
const MAX_PARAMS: usize = 50;
const MAX_NAME: usize = 64;

/// Whether `s` is an OpenJD identifier (`[A-Za-z_][A-Za-z0-9_]*`, 1-64).
pub fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= MAX_NAME
}

/// A JSON/YAML scalar as text: strings as they are, numbers as written.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The checked value of every job parameter.
pub fn resolve(
    defs: &[ParamDef],
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    if defs.len() > MAX_PARAMS {
        return Err(Error::spec(
            "parameterDefinitions",
            format!(
                "has {} parameters; a template may have at most {MAX_PARAMS}",
                defs.len()
            ),
        ));
    }
    for name in given.keys() {
        if !defs.iter().any(|d| &d.name == name) {
            let known: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::spec(
                format!("parameter {name}"),
                format!(
                    "the template defines no parameter {name:?}; it has: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for (i, d) in defs.iter().enumerate() {
        let at = format!("parameterDefinitions[{i}]");
        if !is_identifier(&d.name) {
            return Err(Error::spec(
                format!("{at}.name"),
                format!("{:?} is not a parameter name; use 1-64 letters, digits or '_', not starting with a digit", d.name),
            ));
        }
        if out.contains_key(&d.name) {
            return Err(Error::spec(
                format!("{at}.name"),
                format!(
                    "{:?} is defined twice; parameter names must be unique",
                    d.name
                ),
            ));
        }
        let numeric = matches!(d.kind.as_str(), "INT" | "FLOAT");
        match d.kind.as_str() {
            "INT" | "FLOAT" | "STRING" | "PATH" => {}
            k => {
                return Err(Error::spec(
                    format!("{at}.type"),
                    format!("{k:?} is not a job parameter type; use INT, FLOAT, STRING or PATH"),
                ))
            }
        }
        let misplaced = if numeric {
            [("minLength", &d.min_length), ("maxLength", &d.max_length)]
        } else {
            [("minValue", &d.min_value), ("maxValue", &d.max_value)]
        };
        if let Some((f, _)) = misplaced.iter().find(|(_, v)| v.is_some()) {
            return Err(Error::spec(
                format!("{at}.{f}"),
                format!("does not apply to a {} parameter; remove it", d.kind),
            ));
        }
        if d.kind != "PATH" && (d.object_type.is_some() || d.data_flow.is_some()) {
            return Err(Error::spec(
                format!("{at}.objectType"),
                "objectType and dataFlow apply only to PATH parameters; remove them",
            ));
        }
        if let Some(o) = &d.object_type {
            if o != "FILE" && o != "DIRECTORY" {
                return Err(Error::spec(
                    format!("{at}.objectType"),
                    format!("{o:?} is not FILE or DIRECTORY"),
                ));
            }
        }
        if let Some(f) = &d.data_flow {
            if !["NONE", "IN", "OUT", "INOUT"].contains(&f.as_str()) {
                return Err(Error::spec(
                    format!("{at}.dataFlow"),
                    format!("{f:?} is not NONE, IN, OUT or INOUT"),
                ));
            }
        }
        if let Some(a) = &d.allowed_values {
            if a.is_empty() {
                return Err(Error::spec(
                    format!("{at}.allowedValues"),
                    "is empty; list at least one value or remove it",
                ));
            }
        }
        let (value, field) = match given.get(&d.name) {
            Some(v) => (v.clone(), format!("parameter {}", d.name)),
            None => match &d.default {
                Some(v) => (
                    scalar(v).ok_or_else(|| {
                        Error::spec(format!("{at}.default"), "must be a number or a string")
                    })?,
                    format!("{at}.default"),
                ),
                None => {
                    return Err(Error::spec(
                        format!("parameter {}", d.name),
                        format!(
                            "has no value and no default: give one with `-p {}=VALUE`",
                            d.name
                        ),
                    ))
                }
            },
        };
        check(d, &at, &field, &value)?;
        out.insert(d.name.clone(), value);
    }
    Ok(out)
}

/// Checks one value against its definition; `field` names where it came from.
fn check(d: &ParamDef, at: &str, field: &str, value: &str) -> Result<()> {
    let bad = |m: String| Err(Error::spec(field, m));
    let num = |f: &str, v: &Option<Value>| -> Result<Option<f64>> {
        match v {
            None => Ok(None),
            Some(v) => match scalar(v).and_then(|s| number(&d.kind, &s)) {
                Some(n) => Ok(Some(n)),
                None => Err(Error::spec(
                    format!("{at}.{f}"),
                    format!(
                        "must be a{} number",
                        if d.kind == "INT" { "n integer" } else { "" }
                    ),
                )),
            },
        }
    };
    let count = |f: &str, v: &Option<Value>| -> Result<Option<usize>> {
        match v {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 || f == "minLength" => Ok(Some(n as usize)),
                _ => Err(Error::spec(
                    format!("{at}.{f}"),
                    "must be a whole number of characters, at least 1",
                )),
            },
        }
    };
    match d.kind.as_str() {
        "INT" | "FLOAT" => {
            let Some(n) = number(&d.kind, value) else {
                let what = if d.kind == "INT" {
                    "an integer"
                } else {
                    "a number"
                };
                return bad(format!(
                    "{value:?} is not {what}; {} is an {} parameter",
                    d.name, d.kind
                ));
            };
            let (min, max) = (
                num("minValue", &d.min_value)?,
                num("maxValue", &d.max_value)?,
            );
            if let Some(m) = min.filter(|m| n < *m) {
                return bad(format!("{value} is below {}'s minValue {m}", d.name));
            }
            if let Some(m) = max.filter(|m| n > *m) {
                return bad(format!("{value} is above {}'s maxValue {m}", d.name));
            }
            if let Some(a) = &d.allowed_values {
                let mut ok = false;
                for (k, v) in a.iter().enumerate() {
                    let Some(x) = scalar(v).and_then(|s| number(&d.kind, &s)) else {
                        return Err(Error::spec(
                            format!("{at}.allowedValues[{k}]"),
                            "is not a number of the parameter's type",
                        ));
                    };
                    ok |= x == n;
                }
                if !ok {
                    return bad(format!("{value} is not one of {}'s allowedValues", d.name));
                }
            }
        }
        _ => {
            let len = value.chars().count();
            if let Some(m) = count("minLength", &d.min_length)?.filter(|m| len < *m) {
                return bad(format!(
                    "{value:?} is shorter than {}'s minLength {m}",
                    d.name
                ));
            }
            if let Some(m) = count("maxLength", &d.max_length)?.filter(|m| len > *m) {
                return bad(format!(
                    "{value:?} is longer than {}'s maxLength {m}",
                    d.name
                ));
            }
            if let Some(a) = &d.allowed_values {
                if !a.iter().any(|v| v.as_str() == Some(value)) {
                    return bad(format!(
                        "{value:?} is not one of {}'s allowedValues",
                        d.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `s` read as a number of the parameter type `kind` (INT: whole numbers only).
fn number(kind: &str, s: &str) -> Option<f64> {
    let s = s.trim();
    if kind == "INT" {
        s.parse::<i64>().ok().map(|i| i as f64)
    } else {
        s.parse::<f64>().ok().filter(|f| f.is_finite())
    }
}
