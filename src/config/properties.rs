//! librdkafka properties as the user writes them (`kafka.properties`,
//! `outputs.kafka.properties`): passed to librdkafka as written, except that any value may be a
//! secret, `{env: NAME}` or `{file: PATH}` (the Loki auth's [`SecretSource`], with its
//! semantics), read each time a Kafka client is created.
//!
//! Nothing here ever prints a secret: `Debug` shows a value read from the environment or a file
//! as its source, and the value of a sensitive key ([`is_sensitive`]: passwords, client secrets,
//! inline private keys) as `***` even when it is written in the file. [`ResolvedProperties::redact`]
//! scrubs every resolved secret out of a message that librdkafka might have built from it (a
//! property it refused is quoted with its value).

use super::secret::SecretSource;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Whether a librdkafka property holds a secret whatever its source: its value is never shown.
/// By name rather than a fixed list, so properties librdkafka adds later (`…password`,
/// `…secret`, `…passphrase`, an inline private key) are covered too.
pub fn is_sensitive(key: &str) -> bool {
    const WORDS: [&str; 5] = ["password", "secret", "passphrase", "private.key", "key.pem"];
    key == "sasl.oauthbearer.config" || WORDS.iter().any(|w| key.contains(w))
}

/// One property's value.
#[derive(Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// Written in the config file (numbers and booleans as written).
    Plain(String),
    /// Read from the environment or a file when a client is created.
    Secret(SecretSource),
}

impl From<&str> for PropertyValue {
    fn from(s: &str) -> Self {
        PropertyValue::Plain(s.to_string())
    }
}

impl From<String> for PropertyValue {
    fn from(s: String) -> Self {
        PropertyValue::Plain(s)
    }
}

impl From<SecretSource> for PropertyValue {
    fn from(s: SecretSource) -> Self {
        PropertyValue::Secret(s)
    }
}

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PropertyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value, or a secret `{env: NAME}` / `{file: PATH}`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Plain(s.to_string()))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Plain(b.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Plain(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Plain(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<PropertyValue, E> {
                Ok(PropertyValue::Plain(n.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PropertyValue, A::Error> {
                SecretSource::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(PropertyValue::Secret)
            }
        }
        d.deserialize_any(V)
    }
}

/// The properties of one section, by key.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct KafkaProperties(BTreeMap<String, PropertyValue>);

impl KafkaProperties {
    /// A value written in the file (`None` when absent or a secret).
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.0.get(key)? {
            PropertyValue::Plain(v) => Some(v),
            PropertyValue::Secret(_) => None,
        }
    }

    /// Whether `key` is set, however.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Sets a value (plain, or a [`SecretSource`]).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<PropertyValue>) {
        self.0.insert(key.into(), value.into());
    }

    /// Every property, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PropertyValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key` as messages may show it: a plain value, `***` for a sensitive key,
    /// `{env NAME}` / `{file PATH}` for a secret.
    pub fn shown(&self, key: &str) -> Option<String> {
        self.0.get(key).map(|v| shown(key, v))
    }

    /// Sensitive keys whose value is written in the config file itself.
    pub fn plain_secrets(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(k, v)| is_sensitive(k) && matches!(v, PropertyValue::Plain(_)))
            .map(|(k, _)| k.as_str())
    }

    /// Reads every secret now. The error names the key and where the secret was to come from.
    pub fn resolve(&self) -> Result<ResolvedProperties, PropertyError> {
        let mut out = ResolvedProperties::default();
        for (key, value) in &self.0 {
            match value {
                PropertyValue::Plain(v) => {
                    if is_sensitive(key) {
                        out.secrets.push(v.clone());
                    }
                    out.values.push((key.clone(), v.clone()));
                }
                PropertyValue::Secret(source) => {
                    let secret = source.read().map_err(|reason| PropertyError {
                        key: key.clone(),
                        from: source.describe(),
                        reason,
                    })?;
                    out.secrets.push(secret.0.clone());
                    out.values.push((key.clone(), secret.0));
                }
            }
        }
        Ok(out)
    }
}

fn shown(key: &str, value: &PropertyValue) -> String {
    match value {
        PropertyValue::Secret(s) => format!("{{{}}}", s.describe()),
        PropertyValue::Plain(_) if is_sensitive(key) => "***".into(),
        PropertyValue::Plain(v) => format!("{v:?}"),
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Shown(String);
        impl fmt::Debug for Shown {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, Shown(shown(k, v)))))
            .finish()
    }
}

impl fmt::Debug for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropertyValue::Plain(_) => f.write_str("Plain(..)"),
            PropertyValue::Secret(s) => write!(f, "Secret({})", s.describe()),
        }
    }
}

/// A secret property that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("property `{key}` ({from}): {reason}")]
pub struct PropertyError {
    /// The librdkafka property.
    pub key: String,
    /// Where its secret was to be read (`env NAME`, `file PATH`).
    pub from: String,
    /// Why it could not be.
    pub reason: String,
}

/// Properties with their secrets read, ready for librdkafka; `Debug` shows keys only.
#[derive(Default)]
pub struct ResolvedProperties {
    values: Vec<(String, String)>,
    secrets: Vec<String>,
}

impl ResolvedProperties {
    /// Every `(key, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `text` with every secret value (read from env or file, or of a sensitive key) replaced
    /// by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if !s.is_empty() {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

impl fmt::Debug for ResolvedProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.values.iter().map(|(k, _)| k))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> KafkaProperties {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn values_are_strings_numbers_booleans_or_secrets() {
        let p = parse("a: x\nb: 6000\nc: true\nd: {env: SOME_VAR}\ne: {file: /run/s}\n");
        assert_eq!(p.get("a"), Some("x"));
        assert_eq!(p.get("b"), Some("6000"));
        assert_eq!(p.get("c"), Some("true"));
        assert_eq!(p.get("d"), None);
        assert!(p.contains_key("d"));
        assert_eq!(p.shown("d").as_deref(), Some("{env SOME_VAR}"));
        assert_eq!(p.shown("e").as_deref(), Some("{file /run/s}"));
        let err = serde_yaml::from_str::<KafkaProperties>("d: {env: A, file: B}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one"), "{err}");
    }

    #[test]
    fn debug_never_shows_a_sensitive_or_sourced_value() {
        std::env::set_var("TRACEJOIN_TEST_PROPS_PW", "from-env-s3cr3t");
        let p = parse(
            "sasl.password: written-s3cr3t\nssl.key.password: k3y-s3cr3t\nssl.keystore.password: ks-s3cr3t\nsasl.oauthbearer.client.secret: cl-s3cr3t\nsasl.username: {env: TRACEJOIN_TEST_PROPS_PW}\nclient.id: visible\n",
        );
        let debug = format!("{p:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("visible") && debug.contains("TRACEJOIN_TEST_PROPS_PW"));
        assert_eq!(
            p.plain_secrets().collect::<Vec<_>>(),
            [
                "sasl.oauthbearer.client.secret",
                "sasl.password",
                "ssl.key.password",
                "ssl.keystore.password"
            ]
        );
        let resolved = p.resolve().unwrap();
        assert!(!format!("{resolved:?}").contains("s3cr3t"));
        assert!(resolved
            .iter()
            .any(|(k, v)| k == "sasl.username" && v == "from-env-s3cr3t"));
        let scrubbed = resolved.redact("bad value from-env-s3cr3t, written-s3cr3t; client visible");
        assert_eq!(scrubbed, "bad value ***, ***; client visible");
    }

    #[test]
    fn an_unreadable_secret_names_its_key_and_source_only() {
        let p = parse("sasl.password: {file: /nonexistent/tracejoin/pw}\n");
        let err = p.resolve().unwrap_err().to_string();
        assert!(
            err.contains("sasl.password") && err.contains("/nonexistent/tracejoin/pw"),
            "{err}"
        );
    }
}
