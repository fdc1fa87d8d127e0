//! The first contact with the cluster, before any worker starts: a metadata request over the
//! configured security settings, and if it fails, why, in words an operator can act on.
//!
//! librdkafka never gives up on a broker: with a wrong password or an untrusted certificate its
//! clients reconnect forever and every request just times out, so without this check the
//! process would sit in the consumer group's join with nothing but librdkafka's log lines to say
//! why. librdkafka reports each failed connection through the error callback; those reports are
//! classified here:
//! - SASL authentication refused (`Local: Authentication`): wrong user or password, or a
//!   mechanism the broker does not enable;
//! - the broker's certificate not verified (`Local: SSL error` in the handshake): no CA in
//!   `ssl.ca.location` signed it, or its name does not match the address;
//! - our certificate refused by the broker: under TLS 1.3 the client's handshake completes
//!   first, and the broker's alert (`bad certificate`, `unknown ca`, `certificate required`)
//!   arrives as a transport error on the first request, so those are recognised by the alert.
//!
//! A broker that simply does not answer is not a security failure: the check then gives way to
//! the pipeline, which rides out an unreachable cluster as it always has.

use crate::config::{Config, KafkaProperties};
use crate::sources::kafka::{apply_properties, base_client_config};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How long the check waits for an answer or a classified failure.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the cluster could not be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// A client could not be configured: a secret that cannot be read, a property librdkafka
    /// refuses, a key or certificate file that does not load (or a key password that does not
    /// open it).
    #[error("kafka client config: {detail}")]
    Config {
        /// What librdkafka or the secret reader said, secrets scrubbed.
        detail: String,
    },
    /// The broker refused the SASL credentials.
    #[error("kafka SASL authentication failed (check sasl.mechanisms and the credentials: sasl.username / sasl.password, or the sasl.oauthbearer.* client): {detail}")]
    Authentication {
        /// librdkafka's report.
        detail: String,
    },
    /// The broker's certificate could not be verified.
    #[error("kafka TLS: the broker's certificate is not trusted (check ssl.ca.location, and that the certificate names the broker's address): {detail}")]
    UntrustedBroker {
        /// librdkafka's report.
        detail: String,
    },
    /// The broker refused our client certificate (or its absence).
    #[error("kafka TLS: the broker refused the client certificate (check ssl.certificate.location / ssl.key.location: it must be signed by a CA the broker trusts): {detail}")]
    ClientCertificateRefused {
        /// librdkafka's report.
        detail: String,
    },
    /// Another TLS failure in the handshake.
    #[error("kafka TLS handshake failed: {detail}")]
    Tls {
        /// librdkafka's report.
        detail: String,
    },
    /// No broker answered within the check's time, and none refused us.
    #[error("no kafka broker answered within {timeout:?}: {detail}")]
    Unreachable {
        /// How long the check waited.
        timeout: Duration,
        /// The last error.
        detail: String,
    },
}

impl ConnectError {
    /// A short fixed name of the cause, for the metric label and log field.
    pub fn cause(&self) -> &'static str {
        match self {
            ConnectError::Config { .. } => "config",
            ConnectError::Authentication { .. } => "authentication",
            ConnectError::UntrustedBroker { .. } => "untrusted_broker_certificate",
            ConnectError::ClientCertificateRefused { .. } => "client_certificate_refused",
            ConnectError::Tls { .. } => "tls",
            ConnectError::Unreachable { .. } => "unreachable",
        }
    }

    /// Whether the settings themselves are wrong (retrying with the same ones cannot help,
    /// unless a secret file or certificate changes): everything but an unreachable cluster.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, ConnectError::Unreachable { .. })
    }

    /// Classifies one report of librdkafka's error callback; `None`: not a security failure.
    pub(crate) fn classify(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<ConnectError> {
        let detail = reason.to_string();
        let lower = reason.to_ascii_lowercase();
        let refused_alert = [
            "alert bad certificate",
            "alert unknown ca",
            "certificate required",
            "alert certificate unknown",
            "alert handshake failure",
        ]
        .iter()
        .any(|a| lower.contains(a));
        // librdkafka reports these under `Authentication` too, but they say nothing about the
        // credentials: the connection dropped during the SASL handshake, or the broker found the
        // handshake out of sequence (seen on reconnects racing a token refresh). Not refusals.
        let handshake_glitch = lower.contains("broker transport failure")
            || lower.contains("request not valid in current sasl state");
        match code {
            Some(RDKafkaErrorCode::Authentication) if handshake_glitch => None,
            Some(RDKafkaErrorCode::Authentication) => {
                if lower.contains("ssl") && !lower.contains("sasl") {
                    Some(ConnectError::Tls { detail })
                } else {
                    Some(ConnectError::Authentication { detail })
                }
            }
            _ if refused_alert => Some(ConnectError::ClientCertificateRefused { detail }),
            // librdkafka reports a failed verification twice per attempt: as `SSL` with its
            // advice, and again as a transport failure.
            _ if lower.contains("certificate verify failed") => {
                Some(ConnectError::UntrustedBroker { detail })
            }
            Some(RDKafkaErrorCode::SSL) => Some(ConnectError::Tls { detail }),
            _ => None,
        }
    }
}

/// Keeps the first security failure librdkafka reports.
#[derive(Default)]
struct Watch {
    first: Mutex<Option<ConnectError>>,
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(e) = ConnectError::classify(error.rdkafka_error_code(), reason) {
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(e);
        }
    }
}

impl ProducerContext for Watch {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

/// Connects with the configured settings and asks for the cluster's metadata. Blocking (up to
/// [`CHECK_TIMEOUT`]): call from `spawn_blocking`.
pub fn check(config: &Config) -> Result<(), ConnectError> {
    let scrub = Scrub::new(config);
    let cfg = base_client_config(config).map_err(|e| scrub.config(e))?;
    // The producer's own properties are checked by librdkafka too (not connected: that is the
    // sink's job), so a property it refuses is reported here rather than when the sink starts.
    let mut producer = cfg.clone();
    apply_properties(&mut producer, &config.outputs.kafka.properties)
        .map_err(|e| scrub.config(e))?;
    producer
        .create_native_config()
        .map_err(|e| scrub.config(e))?;
    let client: BaseProducer<Watch> = probe_config(cfg)
        .create_with_context(Watch::default())
        .map_err(|e| scrub.config(e))?;
    let started = Instant::now();
    loop {
        let last = match client
            .client()
            .fetch_metadata(None, Duration::from_millis(500))
        {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        // Serves the error callback. One poll serves one event, and each refused attempt queues
        // several (the refusal, "all brokers down", the disconnect): drain them all.
        for _ in 0..256 {
            client.poll(Duration::ZERO);
        }
        let found = client
            .context()
            .first
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(e) = found {
            return Err(scrub.error(e));
        }
        if started.elapsed() >= CHECK_TIMEOUT {
            return Err(ConnectError::Unreachable {
                timeout: CHECK_TIMEOUT,
                detail: scrub.text(&last),
            });
        }
    }
}

/// The probe's own settings on top of the user's: quick reconnects, so a refusal is seen
/// within the check's time, and librdkafka's log of each refused attempt kept to errors (the
/// check reports the cause once, in words).
fn probe_config(mut c: ClientConfig) -> ClientConfig {
    c.set("client.id", "tracejoin-connect-check")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log.connection.close", "false");
    c
}

/// Takes every secret the config resolves to out of messages built by librdkafka.
struct Scrub {
    resolved: Vec<crate::config::properties::ResolvedProperties>,
    props: [KafkaProperties; 2],
}

impl Scrub {
    fn new(config: &Config) -> Scrub {
        let props = [
            config.kafka.properties.clone(),
            config.outputs.kafka.properties.clone(),
        ];
        Scrub {
            resolved: props.iter().filter_map(|p| p.resolve().ok()).collect(),
            props,
        }
    }

    fn text(&self, t: &str) -> String {
        self.resolved
            .iter()
            .fold(t.to_string(), |acc, r| r.redact(&acc))
    }

    /// A client config error; a refused property is shown by its key and source, never by its
    /// value when that is a secret.
    fn config(&self, e: KafkaError) -> ConnectError {
        let detail = match e {
            KafkaError::ClientConfig(_, desc, key, value) => {
                let shown = self
                    .props
                    .iter()
                    .find_map(|p| p.shown(&key))
                    .unwrap_or(value);
                format!("{key} = {shown}: {desc}")
            }
            other => other.to_string(),
        };
        ConnectError::Config {
            detail: self.text(&detail),
        }
    }

    fn error(&self, e: ConnectError) -> ConnectError {
        let s = |d: String| self.text(&d);
        match e {
            ConnectError::Config { detail } => ConnectError::Config { detail: s(detail) },
            ConnectError::Authentication { detail } => {
                ConnectError::Authentication { detail: s(detail) }
            }
            ConnectError::UntrustedBroker { detail } => {
                ConnectError::UntrustedBroker { detail: s(detail) }
            }
            ConnectError::ClientCertificateRefused { detail } => {
                ConnectError::ClientCertificateRefused { detail: s(detail) }
            }
            ConnectError::Tls { detail } => ConnectError::Tls { detail: s(detail) },
            ConnectError::Unreachable { timeout, detail } => ConnectError::Unreachable {
                timeout,
                detail: s(detail),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The security the README promises is compiled into this build's librdkafka.
    #[test]
    fn librdkafka_has_tls_and_sasl_scram() {
        let features = ClientConfig::new()
            .create_native_config()
            .unwrap()
            .get("builtin.features")
            .unwrap();
        for f in ["ssl", "sasl_plain", "sasl_scram", "sasl_oauthbearer"] {
            assert!(
                features.split(',').any(|x| x == f),
                "librdkafka {:?} lacks {f}: {features}",
                rdkafka::util::get_rdkafka_version()
            );
        }
    }

    /// OAUTHBEARER's OIDC client-credentials flow is built in (rdkafka's `curl` feature): a
    /// client with `sasl.oauthbearer.method=oidc` can be made (`tests/kafka_security.rs` runs it
    /// against the secured broker).
    #[test]
    fn oidc_is_in_this_build() {
        let features = ClientConfig::new()
            .create_native_config()
            .unwrap()
            .get("builtin.features")
            .unwrap();
        assert!(features.split(',').any(|f| f == "oidc"), "{features}");
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanisms", "OAUTHBEARER")
            .set("sasl.oauthbearer.method", "oidc")
            .set("sasl.oauthbearer.client.id", "tracejoin")
            .set("sasl.oauthbearer.client.secret", "planted-oidc-secret")
            .set(
                "sasl.oauthbearer.token.endpoint.url",
                "http://127.0.0.1:1/token",
            )
            .create::<BaseProducer>()
            .expect("an OIDC client");
    }

    #[test]
    fn librdkafka_reports_are_classified_by_cause() {
        let c = |code, reason: &str| ConnectError::classify(code, reason).map(|e| e.cause());
        assert_eq!(
            c(Some(RDKafkaErrorCode::Authentication), "sasl_ssl://127.0.0.1:1/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"),
            Some("authentication")
        );
        assert_eq!(
            c(Some(RDKafkaErrorCode::SSL), "ssl://127.0.0.1:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified"),
            Some("untrusted_broker_certificate")
        );
        assert_eq!(
            c(Some(RDKafkaErrorCode::BrokerTransportFailure), "ssl://127.0.0.1:1/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert bad certificate: SSL alert number 42"),
            Some("client_certificate_refused")
        );
        assert_eq!(
            c(
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "sasl_ssl://127.0.0.1:1/bootstrap: error:0A000086:SSL routines::certificate verify failed (after 3ms in state SSL_HANDSHAKE)"
            ),
            Some("untrusted_broker_certificate")
        );
        assert_eq!(
            c(
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
            ),
            None
        );
        assert_eq!(
            c(
                Some(RDKafkaErrorCode::Authentication),
                "sasl_ssl://127.0.0.1:1/1: SASL OAUTHBEARER mechanism handshake failed: Broker: Request not valid in current SASL state: broker's supported mechanisms:  (after 0ms in state AUTH_HANDSHAKE)"
            ),
            None
        );
        assert_eq!(
            c(
                Some(RDKafkaErrorCode::Authentication),
                "GroupCoordinator: SASL OAUTHBEARER mechanism handshake failed: Local: Broker transport failure: broker's supported mechanisms: (n/a) (after 0ms in state DOWN)"
            ),
            None
        );
        assert_eq!(
            c(
                Some(RDKafkaErrorCode::Authentication),
                "Failed to acquire SASL OAUTHBEARER token: {\"error\":\"invalid_client\"}"
            ),
            Some("authentication")
        );
        assert_eq!(
            c(
                Some(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down"
            ),
            None
        );
    }
}
