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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_where_its_page_ended() {
        for id in [1, 255, 1 << 40] {
            assert_eq!(after('f', Some(&token('f', id))).unwrap(), Some(id));
        }
        assert_eq!(after('f', None).unwrap(), None);
        assert_eq!(after('f', Some("")).unwrap(), None);
    }

    #[test]
    fn a_token_of_another_list_or_forged_is_refused_naming_the_field() {
        let e = after('f', Some("j1f")).unwrap_err().to_string();
        assert!(e.starts_with("page_token: "), "{e}");
        assert!(after('j', Some("jzz")).is_err());
    }
}
