//! Secrets in the config: a value written `{env: NAME}` or `{file: PATH}` names where the secret
//! is, so the file itself holds none. Used by the Loki sink's auth and by any librdkafka property
//! (`kafka.properties`). An environment variable is read once; a file is read again whenever its
//! consumer asks (before each Loki request, at each Kafka client's creation), so a rotated secret
//! volume takes effect without a restart. A trailing newline is stripped; an empty secret is an
//! error (an unset variable exported as empty would otherwise authenticate as nobody).

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// Where a secret is read, written `{env: NAME}` or `{file: PATH}`. The secret itself never
/// appears in the config file or in logs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SecretRepr")]
pub enum SecretSource {
    /// An environment variable, read once at start.
    Env(String),
    /// A file (trailing newline stripped), re-read before each request so a rotated secret
    /// (a Kubernetes secret volume) takes effect without a restart.
    File(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRepr {
    env: Option<String>,
    file: Option<PathBuf>,
}

impl TryFrom<SecretRepr> for SecretSource {
    type Error = String;
    fn try_from(r: SecretRepr) -> Result<Self, String> {
        match (r.env, r.file) {
            (Some(e), None) => Ok(SecretSource::Env(e)),
            (None, Some(f)) => Ok(SecretSource::File(f)),
            _ => Err("a secret is `{env: NAME}` or `{file: PATH}`, exactly one".into()),
        }
    }
}

impl SecretSource {
    /// Reads the secret now.
    pub(crate) fn read(&self) -> Result<Secret, String> {
        let raw = match self {
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|e| format!("environment variable {var}: {e}"))?
            }
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        };
        let s = raw.trim_end_matches(['\r', '\n']).to_string();
        if s.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Secret(s))
    }
    /// Where it is read, for messages: `env NAME`, `file PATH` (never the secret).
    pub(crate) fn describe(&self) -> String {
        match self {
            SecretSource::Env(v) => format!("env {v}"),
            SecretSource::File(p) => format!("file {}", p.display()),
        }
    }
}

/// A secret value; `Debug` prints `Secret(***)`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
