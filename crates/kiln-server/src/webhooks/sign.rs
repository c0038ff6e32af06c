//! Signatures on webhook deliveries: HMAC-SHA256 over the timestamp and the
//! body, so a receiver can tell Kiln's POSTs from anyone else's and refuse
//! a captured one replayed later (it checks the timestamp is recent).
//!
//! The header reads `Kiln-Signature: t=1733580000,v1=5257a8…`, where `v1`
//! is the lowercase hex HMAC-SHA256, keyed with the webhook's secret, of
//! `"{t}.{body}"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `Kiln-Signature` header's value for `body` sent at `unix_secs`.
pub fn header(secret: &str, unix_secs: i64, body: &[u8]) -> String {
    format!("t={unix_secs},v1={}", hex(&mac(secret, unix_secs, body)))
}

fn mac(secret: &str, unix_secs: i64, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(unix_secs.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Checks a `Kiln-Signature` header as a receiver would: the signature
/// matches and its time is within `tolerance_secs` of `now_secs`. Kiln's
/// tests and the documentation's examples use it; receivers in Python use
/// `kiln.verify_webhook`.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), &'static str> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    let t = t.ok_or("no t= timestamp")?;
    if now_secs.abs_diff(t) > tolerance_secs.unsigned_abs() {
        return Err("the timestamp is too old or in the future");
    }
    let want = hex(&mac(secret, t, body));
    // Compared as MACs, in constant time.
    let ok = v1.iter().any(|got| {
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        m.update(got.as_bytes());
        let a = m.finalize().into_bytes();
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        m.update(want.as_bytes());
        m.verify_slice(&a).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the signature does not match")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_known_hmac_sha256() {
        // HMAC-SHA256("key", "1.{}"), computed independently with
        // `printf '1.{}' | openssl dgst -sha256 -hmac key`.
        let h = header("key", 1, b"{}");
        assert_eq!(
            h,
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn verify_takes_its_own_and_refuses_changes() {
        let body = br#"{"seq":7,"kind":"job.finished"}"#;
        let h = header("s3cret", 1_000, body);
        assert_eq!(verify("s3cret", &h, body, 1_100, 300), Ok(()));
        assert!(verify("other", &h, body, 1_100, 300).is_err());
        assert!(verify("s3cret", &h, b"{}", 1_100, 300).is_err());
        assert!(verify("s3cret", &h, body, 2_000, 300).is_err(), "a replay");
        assert!(verify("s3cret", "v1=00", body, 1_000, 300).is_err());
        let forged = h.replace("t=1000", "t=1001");
        assert!(verify("s3cret", &forged, body, 1_001, 300).is_err());
        // Hostile timestamps are refused, never a panic or a wrap.
        for t in [i64::MIN, i64::MAX, -1] {
            let e = verify("s3cret", &format!("t={t},v1=00"), body, 1_000, 300);
            assert!(e.is_err(), "{t}");
        }
    }
}
