//! Query strings and bodies read by hand, so every refusal names the
//! parameter or field at fault.

use crate::problem::Error;
use crate::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use std::collections::BTreeMap;

/// A request's query parameters, each allowed once.
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `raw`, refusing parameters not in `known`.
    pub(crate) fn parse(raw: Option<&str>, known: &[&str]) -> Result<Params, Error> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| Error::BadRequest(format!("the query string is not form-encoded: {e}")))?;
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            if !known.contains(&k.as_str()) {
                return Err(Error::BadRequest(format!(
                    "{k}: unknown query parameter; this resource takes {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(Error::BadRequest(format!("{k}: given more than once")));
            }
        }
        Ok(Params(map))
    }

    /// A parameter's value; an empty one counts as absent.
    pub(crate) fn get(&self, k: &str) -> Option<String> {
        self.0.get(k).filter(|v| !v.is_empty()).cloned()
    }

    pub(crate) fn flag(&self, k: &str) -> Result<bool, Error> {
        match self.get(k).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(v) => Err(Error::BadRequest(format!(
                "{k}: {v:?} is not a boolean; use true or false"
            ))),
        }
    }

    /// `page_size`, capped at [`MAX_PAGE_SIZE`].
    pub(crate) fn page_size(&self) -> Result<usize, Error> {
        let Some(v) = self.get("page_size") else {
            return Ok(DEFAULT_PAGE_SIZE);
        };
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n.min(MAX_PAGE_SIZE)),
            _ => Err(Error::BadRequest(format!(
                "page_size: {v:?} is not a whole number from 1 to {MAX_PAGE_SIZE}"
            ))),
        }
    }
}

/// A JSON body as `T`; an error names the field at fault.
pub(crate) fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::BadRequest(format!("body: {inner}"))
        } else {
            Error::BadRequest(format!("{path}: {inner}"))
        }
    })
}

/// A JSON body that may be left out: none (or only whitespace) reads as
/// `{}`, so a type whose fields all have defaults needs none, and one
/// with a required field names it.
pub(crate) fn json_or_empty<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        json(b"{}")
    } else {
        json(body)
    }
}

/// A whole number parameter, refused naming it when it is not one.
pub(crate) fn number<T: std::str::FromStr>(p: &Params, k: &str) -> Result<Option<T>, Error> {
    p.get(k)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                Error::BadRequest(format!(
                    "{k}: {v:?} is not a whole number of the right size"
                ))
            })
        })
        .transpose()
}
