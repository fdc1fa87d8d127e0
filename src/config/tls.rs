//! TLS files named in the config: the Loki output's client side (`outputs.loki.tls`) and the
//! `/metrics` endpoint's server side (`metrics.tls`), with the keys and semantics of Prometheus'
//! `tls_config` and web-config `tls_server_config`.
//!
//! Edge cases:
//! - Files are read and parsed at start-up (and by `tracejoin check`); an unreadable file, a file
//!   without a PEM certificate or key, a certificate without its key (or the reverse) is an error
//!   that names the key and the path, never the file's content.
//! - `ca_file` replaces the built-in roots (Prometheus' semantics): a private CA is trusted, and
//!   only it. Without `ca_file` the server's certificate must chain to a public root.
//! - Encrypted private keys are refused with how to decrypt them: rustls reads only plain PKCS#8,
//!   PKCS#1 and SEC1 keys, so there is no passphrase to keep secret here.
//! - Relative paths are taken from the config file's folder, like the rule files.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// A TLS file that cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("config key `{key}` = {path}: cannot read the file: {source}")]
    Read {
        /// The dotted key (`outputs.loki.tls.ca_file`).
        key: String,
        /// The path as configured.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not what the key needs.
    #[error("config key `{key}` = {path}: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// The path as configured.
        path: String,
        /// What is wrong (never the file's content).
        reason: String,
    },
    /// A key that another key needs is missing.
    #[error("config key `{key}`: {reason}")]
    Missing {
        /// The dotted key that is missing.
        key: String,
        /// Why it is needed.
        reason: String,
    },
}

impl TlsError {
    /// The key, the value shown (the path) and what is wrong, for errors of the shape
    /// `config key `KEY` = VALUE: REASON`.
    pub fn into_parts(self) -> (String, String, String) {
        match self {
            TlsError::Read { key, path, source } => {
                (key, path, format!("cannot read the file: {source}"))
            }
            TlsError::Invalid { key, path, reason } => (key, path, reason),
            TlsError::Missing { key, reason } => (key, "(unset)".into(), reason),
        }
    }
}

/// Client side: how tracejoin checks a server and proves itself to it (Loki).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM file of the CA certificate(s) that sign the server's certificate. Replaces the
    /// built-in public roots: with it, only these CAs are trusted.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (and its chain), for servers that require one (mTLS).
    /// Needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of `cert_file`'s private key (PKCS#8, PKCS#1 or SEC1; not encrypted).
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate, unverified. For a test bench only: start-up warns.
    pub insecure_skip_verify: bool,
}

/// What [`ClientTlsConfig::load`] read.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// The CA certificates, DER; empty: the built-in roots.
    pub roots: Vec<CertificateDer<'static>>,
    /// The client certificate chain and key, as PEM text (what HTTP clients take), if any.
    pub identity_pem: Option<Vec<u8>>,
    /// Whether verification is off.
    pub insecure_skip_verify: bool,
}

impl ClientTlsConfig {
    /// Makes relative paths relative to `dir` (the config file's folder).
    pub fn resolve_relative(&mut self, dir: &Path) {
        for p in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Reads and checks the files; errors name the key under `prefix` (`outputs.loki.tls`).
    pub fn load(&self, prefix: &str) -> Result<ClientTlsFiles, TlsError> {
        let roots = match &self.ca_file {
            Some(p) => read_certs(&format!("{prefix}.ca_file"), p)?,
            None => Vec::new(),
        };
        let identity_pem = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(_), None) => return Err(missing(prefix, "key_file", "cert_file")),
            (None, Some(_)) => return Err(missing(prefix, "cert_file", "key_file")),
            (Some(c), Some(k)) => {
                let (ck, kk) = (format!("{prefix}.cert_file"), format!("{prefix}.key_file"));
                read_certs(&ck, c)?;
                read_key(&kk, k)?;
                let mut pem = read(&ck, c)?;
                pem.push(b'\n');
                pem.extend(read(&kk, k)?);
                Some(pem)
            }
        };
        Ok(ClientTlsFiles {
            roots,
            identity_pem,
            insecure_skip_verify: self.insecure_skip_verify,
        })
    }
}

/// Server side: the `/metrics` endpoint over HTTPS, optionally requiring client certificates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM file of the server certificate (and its chain). Required.
    pub cert_file: PathBuf,
    /// PEM file of its private key (PKCS#8, PKCS#1 or SEC1; not encrypted). Required.
    pub key_file: PathBuf,
    /// PEM file of the CA(s) whose client certificates are accepted. Set: every client must
    /// present one (Prometheus' `client_auth_type: RequireAndVerifyClientCert`). Unset: no
    /// client certificate is asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTlsConfig {
    /// Makes relative paths relative to `dir` (the config file's folder).
    pub fn resolve_relative(&mut self, dir: &Path) {
        for p in [&mut self.cert_file, &mut self.key_file]
            .into_iter()
            .chain(self.client_ca_file.as_mut())
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Reads the files and builds the server's TLS config (HTTP/1.1 only); errors name the key
    /// under `prefix` (`metrics.tls`).
    pub fn server_config(&self, prefix: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let ck = format!("{prefix}.cert_file");
        let kk = format!("{prefix}.key_file");
        let certs = read_certs(&ck, &self.cert_file)?;
        let key = read_key(&kk, &self.key_file)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid {
                key: prefix.to_string(),
                path: String::new(),
                reason: e.to_string(),
            })?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(p) => {
                let key = format!("{prefix}.client_ca_file");
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(&key, p)? {
                    roots.add(c).map_err(|e| invalid(&key, p, e.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .map_err(|e| invalid(&key, p, e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| invalid(&kk, &self.key_file, format!("does not fit cert_file: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn missing(prefix: &str, absent: &str, given: &str) -> TlsError {
    TlsError::Missing {
        key: format!("{prefix}.{absent}"),
        reason: format!("required with `{given}`"),
    }
}

fn invalid(key: &str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        key: key.to_string(),
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key: key.to_string(),
        path: path.display().to_string(),
        source,
    })
}

/// Every PEM certificate in the file; at least one.
pub(crate) fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The first PEM private key in the file.
pub(crate) fn read_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(key, path)?;
    if pem
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
        || pem
            .windows(b"Proc-Type: 4,ENCRYPTED".len())
            .any(|w| w == b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(invalid(
            key,
            path,
            "the private key is encrypted; give it decrypted (openssl pkey -in KEY -out PLAIN), \
             on a volume only tracejoin reads",
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(
            key,
            path,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn errors_name_the_key_and_path_never_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let missing_file = ClientTlsConfig {
            ca_file: Some(dir.path().join("absent.crt")),
            ..Default::default()
        };
        let e = missing_file
            .load("outputs.loki.tls")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`outputs.loki.tls.ca_file`"), "{e}");
        assert!(e.contains("absent.crt") && e.contains("cannot read"), "{e}");

        let not_pem = write(dir.path(), "garbage.crt", "planted-not-a-certificate\n");
        let e = ClientTlsConfig {
            ca_file: Some(not_pem),
            ..Default::default()
        }
        .load("outputs.loki.tls")
        .unwrap_err()
        .to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(!e.contains("planted"), "{e}");

        let key = write(
            dir.path(),
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nplanted\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = read_key("metrics.tls.key_file", &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("encrypted") && !e.contains("planted"), "{e}");

        let e = ClientTlsConfig {
            cert_file: Some(dir.path().join("c.crt")),
            ..Default::default()
        }
        .load("outputs.loki.tls")
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "config key `outputs.loki.tls.key_file`: required with `cert_file`"
        );
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut c = ClientTlsConfig {
            ca_file: Some("tls/ca.crt".into()),
            cert_file: Some("/abs/c.crt".into()),
            ..Default::default()
        };
        c.resolve_relative(Path::new("/etc/tracejoin"));
        assert_eq!(c.ca_file.unwrap(), Path::new("/etc/tracejoin/tls/ca.crt"));
        assert_eq!(c.cert_file.unwrap(), Path::new("/abs/c.crt"));
    }
}
