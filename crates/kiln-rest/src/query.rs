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

/// A time parameter, as milliseconds since the Unix epoch: given so, or
/// as `kiln history --since` takes it, a duration ago (`7d`, `12h`) or a
/// UTC date (`2026-12-01`, `2026-12-01T09:00:00Z`).
pub(crate) fn time_ms(p: &Params, k: &str) -> Result<Option<i64>, Error> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let Some(v) = p.get(k) else { return Ok(None) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    if let Ok(s) = kiln_core::size::parse_duration_s(&v) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        return Ok(Some(now.saturating_sub((s as i64).saturating_mul(1000))));
    }
    if let Ok(t) = time::OffsetDateTime::parse(&v, &Rfc3339) {
        return Ok(Some((t.unix_timestamp_nanos() / 1_000_000) as i64));
    }
    if let Ok(d) = time::Date::parse(&v, format_description!("[year]-[month]-[day]")) {
        return Ok(Some(d.midnight().assume_utc().unix_timestamp() * 1000));
    }
    Err(Error::BadRequest(format!(
        "{k}: {v:?} is not a time; give milliseconds since the Unix epoch, a duration ago \
         (1h, 7d) or a UTC date such as 2026-12-07 or 2026-12-07T09:30:00Z"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_milliseconds_durations_ago_or_utc_dates() {
        let p = |q: &str| Params::parse(Some(q), &["since"]).unwrap();
        assert_eq!(time_ms(&p("since=1500"), "since").unwrap(), Some(1500));
        assert_eq!(
            time_ms(&p("since=2026-12-07"), "since").unwrap(),
            Some(1_796_601_600_000)
        );
        assert_eq!(
            time_ms(&p("since=2026-12-07T00:00:01Z"), "since").unwrap(),
            Some(1_796_601_601_000)
        );
        let ago = time_ms(&p("since=1h"), "since").unwrap().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((now - 3_600_000 - ago).abs() < 60_000, "{ago}");
        let e = time_ms(&p("since=yesterday"), "since")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("since: "), "{e}");
        assert_eq!(time_ms(&p(""), "since").unwrap(), None);
    }
}
