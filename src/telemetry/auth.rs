//! Basic authentication of `/metrics`, with Prometheus' web-config semantics
//! (`basic_auth_users`: user name → bcrypt hash of the password): a scrape without valid
//! credentials gets 401 and `WWW-Authenticate: Basic`.
//!
//! Edge cases, as Prometheus' exporter-toolkit handles them:
//! - bcrypt is slow on purpose (tens of milliseconds at cost 10), so a pair once verified is
//!   remembered and later scrapes with it cost a lookup; the memory is bounded and forgets
//!   everything when full;
//! - an unknown user is checked against a fixed hash all the same, so the time of a refusal
//!   does not tell which user names exist.
//!
//! `/healthz` and `/readyz` stay open: orchestrators probe them without credentials, and they
//! say nothing a scrape would.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// Verified pairs remembered at most.
const CACHE_MAX: usize = 64;

/// A bcrypt hash of a random password, compared against for unknown users (made once).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let password: [u8; 16] = rand::random();
        bcrypt::hash(password, 10).unwrap_or_default()
    })
}

/// The users allowed to scrape `/metrics`; none: no authentication.
#[derive(Debug, Default)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<(String, String)>>,
}

impl BasicAuth {
    /// From `metrics.basic_auth_users` (user → bcrypt hash).
    pub fn new(users: BTreeMap<String, String>) -> Self {
        BasicAuth {
            users,
            verified: Mutex::default(),
        }
    }

    /// Whether credentials are required.
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the `Authorization` header value lets its sender in. Blocking (bcrypt): call
    /// from `spawn_blocking`.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        if !self.enabled() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let pair = (user, password);
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&pair) {
            return true;
        }
        drop(verified);
        let (hash, known) = match self.users.get(&pair.0) {
            Some(h) => (h.as_str(), true),
            None => (dummy_hash(), false),
        };
        let ok = bcrypt::verify(&pair.1, hash).unwrap_or(false) && known;
        if ok {
            verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.len() >= CACHE_MAX {
                verified.clear();
            }
            verified.insert(pair);
        }
        ok
    }
}

/// Whether `hash` is a bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`, cost, salt and digest).
pub fn is_bcrypt_hash(hash: &str) -> bool {
    let parts: Vec<&str> = hash.split('$').collect();
    matches!(parts.as_slice(), ["", v, cost, rest]
        if ["2a", "2b", "2x", "2y"].contains(v)
            && cost.len() == 2
            && cost.parse::<u32>().is_ok_and(|c| (4..=31).contains(&c))
            && rest.len() == 53)
}

/// `Basic base64(user:password)` → the pair.
fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn header(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn only_a_listed_user_with_the_right_password_gets_in() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new([("prometheus".to_string(), hash)].into());
        assert!(auth.allows(Some(&header("prometheus", "s3cret"))));
        // Remembered: the second time costs no bcrypt.
        assert!(auth.allows(Some(&header("prometheus", "s3cret"))));
        assert!(!auth.allows(Some(&header("prometheus", "wrong"))));
        assert!(!auth.allows(Some(&header("someone", "s3cret"))));
        assert!(!auth.allows(None));
        assert!(!auth.allows(Some("Bearer abc")));
        assert!(BasicAuth::default().allows(None));
    }

    #[test]
    fn bcrypt_hashes_are_recognised() {
        assert!(is_bcrypt_hash(dummy_hash()));
        assert!(is_bcrypt_hash(&bcrypt::hash("x", 4).unwrap()));
        assert!(!is_bcrypt_hash("s3cret"));
        let h = bcrypt::hash("x", 4).unwrap();
        assert!(!is_bcrypt_hash(&h.replacen("$04$", "$99$", 1)));
    }
}
