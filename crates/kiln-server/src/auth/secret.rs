//! Secrets at the edge: making tokens, hashing what clients present, and
//! password hashes. The registry (`kiln_core::auth::identity`) and the store
//! only ever see a token's public id and hashes.
//!
//! A token reads `kiln_<kind>_<id>_<secret>`: the prefix makes a leaked one
//! recognisable to secret scanners, the id finds it without a scan, and the
//! secret is 256 random bits. Being that random, a fast hash (SHA-256) is
//! enough to store it; passwords, which people choose, get argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

/// What a token is for, as its prefix says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A personal or service API token, or a login session.
    Api,
    /// A worker join token, exchanged once for a host credential.
    Join,
    /// A host's own credential.
    Host,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Join => "join",
            Kind::Host => "host",
        }
    }
}

/// A token as made: the text handed out once, and what the registry keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub text: String,
    pub id: String,
    pub hash: String,
}

/// A presented token, split; the secret is hashed at once by [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub kind: Kind,
    pub id: String,
    pub hash: String,
}

/// Makes a token of `kind` from the system's random source.
pub fn new_token(kind: Kind) -> std::io::Result<NewToken> {
    let id = hex(&random::<6>()?);
    let secret = hex(&random::<32>()?);
    Ok(NewToken {
        text: format!("kiln_{}_{id}_{secret}", kind.word()),
        hash: hash(&secret),
        id,
    })
}

/// Splits and hashes a presented token; `None` if it is not shaped as one.
pub fn parse(text: &str) -> Option<Presented> {
    let rest = text.trim().strip_prefix("kiln_")?;
    let (word, rest) = rest.split_once('_')?;
    let (id, secret) = rest.split_once('_')?;
    let kind = [Kind::Api, Kind::Join, Kind::Host]
        .into_iter()
        .find(|k| k.word() == word)?;
    let hexish = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hexish(id, 12) || !hexish(secret, 64) {
        return None;
    }
    Some(Presented {
        kind,
        id: id.to_string(),
        hash: hash(secret),
    })
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// An argon2id hash of `password` in PHC form (OWASP's parameters: 19 MiB,
/// two passes). Slow on purpose: call it off the async runtime's threads.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random::<16>().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches a hash from [`hash_password`]. A stored hash
/// that does not parse matches nothing.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_parses_back_to_its_id_and_hash() {
        let t = new_token(Kind::Api).unwrap();
        assert!(t.text.starts_with("kiln_api_"));
        let p = parse(&t.text).unwrap();
        assert_eq!(
            (p.kind, p.id.as_str(), p.hash.as_str()),
            (Kind::Api, t.id.as_str(), t.hash.as_str())
        );
        let other = new_token(Kind::Api).unwrap();
        assert_ne!(other.id, t.id);
        assert_ne!(other.hash, t.hash);
        // The secret is not derivable from what is stored.
        assert!(!t.text.contains(&t.hash));
    }

    #[test]
    fn malformed_tokens_are_not_tokens() {
        let t = new_token(Kind::Join).unwrap().text;
        for bad in [
            "",
            "kiln_",
            "kiln_api",
            "bearer xyz",
            &t.replace("kiln_join", "kiln_root"),
            &t[..t.len() - 1],
            &format!("{t}0"),
            &t.replace('_', "-"),
            &format!("{}g", &t[..t.len() - 1]),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse(&format!(" {t}\n")).map(|p| p.kind), Some(Kind::Join));
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
        assert_ne!(hash_password("correct horse").unwrap(), h, "salted");
    }
}
