//! Server-issued cursors: a page ends with a token naming where the next
//! begins (after an id), so a client walks a list in pages with no
//! duplicate and no gap while it grows, and never builds a token itself.

use crate::problem::Error;

/// A page token: the kind of list and the last id the page held, so a
/// token from one list is refused by another.
pub(crate) fn token(kind: char, last_id: i64) -> String {
    format!("{kind}{last_id:x}")
}

/// The id after which the page starts; `None`: from the beginning.
pub(crate) fn after(kind: char, token: Option<&str>) -> Result<Option<i64>, Error> {
    let Some(t) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    t.strip_prefix(kind)
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .map(Some)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "page_token: {t:?} is not a token this list issued; pass the \
                 next_page_token of the previous page, or none for the first"
            ))
        })
}

/// One page of `items` (sorted by id) after `after`, at most `size`, and
/// the token of the next page when there is more.
pub(crate) fn page<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> i64,
    kind: char,
    after: Option<i64>,
    size: usize,
) -> (Vec<T>, Option<String>) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|t| after.is_none_or(|a| id(t) > a))
        .collect();
    rest.sort_by_key(&id);
    let more = rest.len() > size;
    rest.truncate(size);
    let next = more.then(|| token(kind, rest.last().map(&id).unwrap_or_default()));
    (rest, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_a_list_with_no_gap_and_no_duplicate() {
        let ids: Vec<i64> = (1..=25).rev().collect();
        let mut seen = vec![];
        let mut next: Option<String> = None;
        loop {
            let after = after('j', next.as_deref()).unwrap();
            let (p, n) = page(ids.clone(), |i| *i, 'j', after, 10);
            seen.extend(p);
            match n {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    }

    #[test]
    fn a_token_of_another_list_or_forged_is_refused_naming_the_field() {
        let e = after('f', Some("j1f")).unwrap_err().to_string();
        assert!(e.starts_with("page_token: "), "{e}");
        assert!(after('j', Some("jzz")).is_err());
    }
}
