//! One batch to the server: encoding, the HTTP request, whether a failure is worth retrying, and
//! the backoff between attempts.
//!
//! - 2xx: delivered.
//! - 429: retried after the server's `Retry-After` (seconds or an HTTP date, capped at 5m), else
//!   after the exponential backoff.
//! - 5xx, connection errors, timeouts: retried with exponential backoff and jitter
//!   (`initial_backoff` doubling up to `max_backoff`, each delay drawn from [d/2, d]).
//! - Any other status (400 "entry too old", "line too long", 401, 413, …): not retried; the batch
//!   comes back as [`BatchOutcome::Rejected`] with the server's text, for the dead-letter topic.
//! - With `retry.max_attempts` set, a batch still failing after that many attempts comes back
//!   rejected too ([`RejectCause::RetriesExhausted`]); unset, `send` retries until delivered,
//!   which is how backpressure reaches the consumer: the pipeline bounds batches in flight.
//!
//! No log lines here, and metric names only in `telemetry`: what changes while a batch is still
//! being retried (attempts, retries, batches in flight and failing) is reported to it as it
//! happens, so a Loki outage shows on `/metrics` at once, not when the batch finally ends; the
//! rest comes with each outcome's [`SendStats`]. [`LokiClient::stats`] keeps cumulative
//! counters per client.
//!
//! Why one file over 600 lines: one request's life (encoding, the retry classification of every Loki status, backoff, stats) reads best in one place; the wire formats live in `event`.

use super::config::{AuthConfig, LokiConfig, LokiEncoding, RetryConfig, Secret, SecretSource};
use super::event::{self, PushRequest, StreamAdapter};
use super::sink::LokiBatch;
use super::LokiError;
use crate::model::Origin;
use crate::telemetry::metrics;
use prost::Message as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Longest server response text kept in a rejection.
const MAX_REASON_BYTES: usize = 1024;

/// What became of a batch.
#[derive(Debug)]
pub enum BatchOutcome {
    /// The server acknowledged it (2xx).
    Delivered {
        /// The records of its entries: their offsets may be committed (as far as Loki goes).
        origins: Vec<Origin>,
        /// Entries.
        entries: usize,
        /// Request body bytes before compression.
        bytes: usize,
        /// Attempts, retries, latency.
        stats: SendStats,
    },
    /// The server refused the batch permanently (4xx other than 429), or it failed
    /// `retry.max_attempts` times: the pipeline dead-letters it.
    Rejected {
        /// The records of its entries.
        origins: Vec<Origin>,
        /// The last HTTP status; 0 when the last attempt got no response (connection error).
        status: u16,
        /// The server's response text (truncated to 1KiB), or the connection error.
        reason: String,
        /// The batch as JSON lines, one per entry (see `event::write_dead_letter_line`).
        payload: Vec<u8>,
        /// Why, as a small fixed set (a metric label).
        cause: RejectCause,
        /// Attempts, retries, latency.
        stats: SendStats,
    },
}

impl BatchOutcome {
    /// The records of the batch's entries.
    pub fn origins(&self) -> &[Origin] {
        match self {
            BatchOutcome::Delivered { origins, .. } | BatchOutcome::Rejected { origins, .. } => {
                origins
            }
        }
    }
    /// Attempts, retries, latency of the batch.
    pub fn stats(&self) -> &SendStats {
        match self {
            BatchOutcome::Delivered { stats, .. } | BatchOutcome::Rejected { stats, .. } => stats,
        }
    }
}

/// Why a batch was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCause {
    /// HTTP 400: Loki refused the content (too old, too long, bad labels, …).
    BadRequest,
    /// Another 4xx (401, 403, 404, 413, …): usually configuration.
    ClientError,
    /// Still failing after `retry.max_attempts`.
    RetriesExhausted,
}

impl RejectCause {
    /// `bad_request`, `client_error`, `retries_exhausted`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCause::BadRequest => "bad_request",
            RejectCause::ClientError => "client_error",
            RejectCause::RetriesExhausted => "retries_exhausted",
        }
    }
}

/// How sending one batch went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendStats {
    /// HTTP attempts (1 when it went through first time).
    pub attempts: u32,
    /// Retries after a 429.
    pub retries_rate_limited: u32,
    /// Retries after a 5xx.
    pub retries_server_error: u32,
    /// Retries after a connection error or timeout.
    pub retries_connection: u32,
    /// From the first attempt to the outcome, backoff included.
    pub latency: Duration,
    /// Duration of the last HTTP request alone (for a request-latency histogram).
    pub request_latency: Duration,
    /// Bytes on the wire (after snappy for protobuf).
    pub wire_bytes: usize,
    /// Streams in the batch.
    pub streams: usize,
}

/// Cumulative counters of a client (and its clones), for `telemetry` to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LokiStats {
    /// HTTP requests made.
    pub requests: u64,
    /// Sum of the requests' durations, in nanoseconds.
    pub request_nanos: u64,
    /// Batches delivered.
    pub batches_delivered: u64,
    /// Entries delivered.
    pub entries_delivered: u64,
    /// Uncompressed request bytes delivered.
    pub bytes_delivered: u64,
    /// Wire bytes delivered.
    pub wire_bytes_delivered: u64,
    /// Batches rejected with `bad_request`.
    pub batches_rejected_bad_request: u64,
    /// Batches rejected with `client_error`.
    pub batches_rejected_client_error: u64,
    /// Batches rejected with `retries_exhausted`.
    pub batches_rejected_retries_exhausted: u64,
    /// Entries in rejected batches.
    pub entries_rejected: u64,
    /// Retries after a 429.
    pub retries_rate_limited: u64,
    /// Retries after a 5xx.
    pub retries_server_error: u64,
    /// Retries after a connection error or timeout.
    pub retries_connection: u64,
    /// Batches inside `send` now (gauge).
    pub batches_in_flight: i64,
    /// Batches inside `send` whose last attempt failed (gauge): > 0 means the server is failing.
    pub batches_failing: i64,
    /// The last failure (status and text, or connection error), if any.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    request_nanos: AtomicU64,
    batches_delivered: AtomicU64,
    entries_delivered: AtomicU64,
    bytes_delivered: AtomicU64,
    wire_bytes_delivered: AtomicU64,
    rejected_bad_request: AtomicU64,
    rejected_client_error: AtomicU64,
    rejected_exhausted: AtomicU64,
    entries_rejected: AtomicU64,
    retries_rate_limited: AtomicU64,
    retries_server_error: AtomicU64,
    retries_connection: AtomicU64,
    in_flight: AtomicI64,
    failing: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// A secret, re-read from its file before each request (rotation); from the environment once.
struct SecretCell {
    source: SecretSource,
    last: Mutex<Secret>,
}

impl SecretCell {
    fn new(source: &SecretSource) -> Result<Self, String> {
        Ok(SecretCell {
            last: Mutex::new(source.read()?),
            source: source.clone(),
        })
    }
    fn current(&self) -> String {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let SecretSource::File(_) = self.source {
            if let Ok(s) = self.source.read() {
                *last = s;
            }
        }
        last.0.clone()
    }
}

enum Auth {
    Basic { user: String, password: SecretCell },
    Bearer { token: SecretCell },
}

struct Inner {
    http: reqwest::Client,
    url: reqwest::Url,
    encoding: LokiEncoding,
    auth: Option<Auth>,
    retry: RetryConfig,
    counters: Counters,
}

/// Sends batches. Cheap to clone; clones share the HTTP connection pool and the counters.
#[derive(Clone)]
pub struct LokiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LokiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LokiClient")
            .field("url", &self.inner.url.as_str())
            .field("encoding", &self.inner.encoding)
            .finish_non_exhaustive()
    }
}

/// A batch in its wire shape, with what the JSON forms and the outcome need beside it.
pub(crate) struct WireBatch {
    pub(crate) tenant: Option<Arc<str>>,
    pub(crate) request: PushRequest,
    pub(crate) pairs: Vec<Vec<(Arc<str>, String)>>,
    /// Per stream, the origin of each entry, in entry order.
    pub(crate) origins: Vec<Vec<Origin>>,
    pub(crate) entries: usize,
}

impl LokiBatch {
    /// Sorts each stream by timestamp and moves the entries into the protobuf messages.
    pub(crate) fn into_wire(self) -> WireBatch {
        let mut streams = Vec::with_capacity(self.streams.len());
        let mut pairs = Vec::with_capacity(self.streams.len());
        let mut origins = Vec::with_capacity(self.streams.len());
        for mut s in self.streams {
            s.entries.sort_by_key(|e| e.ts);
            origins.push(s.entries.iter().map(|e| e.origin).collect());
            streams.push(StreamAdapter {
                labels: s.labels,
                entries: s.entries.into_iter().map(|e| e.into_wire()).collect(),
                hash: 0,
            });
            pairs.push(s.pairs);
        }
        WireBatch {
            tenant: self.tenant,
            request: PushRequest { streams },
            pairs,
            origins,
            entries: self.entries,
        }
    }
}

impl WireBatch {
    /// The request body (`snappy(protobuf)` or JSON), its uncompressed size and content type.
    pub(crate) fn encode(&self, encoding: LokiEncoding) -> (bytes::Bytes, usize, &'static str) {
        match encoding {
            LokiEncoding::Protobuf => {
                let raw = self.request.encode_to_vec();
                let compressed = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .expect("snappy accepts any input below 4GiB");
                (compressed.into(), raw.len(), "application/x-protobuf")
            }
            LokiEncoding::Json => {
                let mut out = Vec::with_capacity(self.entries * 128);
                event::write_json_push(&self.request.streams, &self.pairs, &mut out);
                let n = out.len();
                (out.into(), n, "application/json")
            }
        }
    }

    fn all_origins(&self) -> Vec<Origin> {
        self.origins.iter().flatten().copied().collect()
    }

    /// The batch as dead-letter JSON lines.
    pub(crate) fn dead_letter_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for ((stream, pairs), origins) in self
            .request
            .streams
            .iter()
            .zip(&self.pairs)
            .zip(&self.origins)
        {
            for (entry, origin) in stream.entries.iter().zip(origins) {
                event::write_dead_letter_line(
                    self.tenant.as_deref(),
                    pairs,
                    entry,
                    *origin,
                    &mut out,
                );
            }
        }
        out
    }
}

/// How one attempt ended.
enum Attempt {
    Delivered,
    Permanent {
        status: u16,
        text: String,
    },
    Retry {
        cause: RetryCause,
        status: u16,
        after: Option<Duration>,
        text: String,
    },
}

#[derive(Clone, Copy)]
enum RetryCause {
    RateLimited,
    ServerError,
    Connection,
    /// The TLS handshake failed: an untrusted or wrong server certificate, or the server
    /// refused ours. Retried like a connection error (the fix — a CA file, a certificate —
    /// comes from outside), but counted and logged apart.
    Tls,
}

/// What a failed request's error chain (rustls' wording, through hyper and reqwest) says about
/// the TLS handshake, in the operator's terms; `None` when it is not a TLS failure.
fn tls_failure(chain: &str) -> Option<&'static str> {
    let has = |s: &str| chain.contains(s);
    if has("UnknownIssuer") {
        Some("the server's certificate is not signed by a trusted CA (outputs.loki.tls.ca_file)")
    } else if has("NotValidForName") {
        Some("the server's certificate does not name the endpoint's host")
    } else if has("invalid peer certificate: Expired") {
        Some("the server's certificate has expired")
    } else if has("CertificateRequired")
        || has("HandshakeFailure")
        || has("BadCertificate")
        || has("UnknownCA")
        || has("CertificateUnknown")
        || has("AccessDenied")
    {
        Some("the server refused the handshake: a client certificate it trusts is needed (outputs.loki.tls.cert_file, key_file)")
    } else if has("invalid peer certificate")
        || has("peer is incompatible")
        || has("InvalidContentType")
        || has("CorruptMessage")
    {
        Some("the handshake failed (is the endpoint serving TLS?)")
    } else {
        None
    }
}

impl LokiClient {
    pub(crate) fn new(cfg: &LokiConfig) -> Result<Self, LokiError> {
        let url = reqwest::Url::parse(&cfg.push_url()).map_err(|e| {
            LokiError::Config(super::config::LokiConfigError::Invalid {
                key: "outputs.loki.endpoint".into(),
                value: cfg.push_url(),
                reason: e.to_string(),
            })
        })?;
        let secret_err = |key: &str, e: String| {
            LokiError::Config(super::config::LokiConfigError::Invalid {
                key: key.into(),
                value: "(secret)".into(),
                reason: e,
            })
        };
        let auth = match &cfg.auth {
            None => None,
            Some(AuthConfig::Basic { user, password }) => Some(Auth::Basic {
                user: user.clone(),
                password: SecretCell::new(password)
                    .map_err(|e| secret_err("outputs.loki.auth.basic.password", e))?,
            }),
            Some(AuthConfig::Bearer { token }) => Some(Auth::Bearer {
                token: SecretCell::new(token)
                    .map_err(|e| secret_err("outputs.loki.auth.bearer.token", e))?,
            }),
        };
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("tracejoin/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(tls) = &cfg.tls {
            let files = tls.load("outputs.loki.tls").map_err(|e| {
                let (key, value, reason) = e.into_parts();
                LokiError::Config(super::config::LokiConfigError::Invalid { key, value, reason })
            })?;
            if !files.roots.is_empty() {
                // Prometheus' `ca_file`: the private CA replaces the public roots.
                http = http.tls_built_in_root_certs(false);
                for der in &files.roots {
                    let cert = reqwest::Certificate::from_der(der).map_err(LokiError::Client)?;
                    http = http.add_root_certificate(cert);
                }
            }
            if let Some(pem) = &files.identity_pem {
                http = http.identity(reqwest::Identity::from_pem(pem).map_err(LokiError::Client)?);
            }
            if files.insecure_skip_verify {
                crate::telemetry::loki_tls_verification_off();
                http = http.danger_accept_invalid_certs(true);
            }
        }
        let http = http.build().map_err(LokiError::Client)?;
        Ok(LokiClient {
            inner: Arc::new(Inner {
                http,
                url,
                encoding: cfg.encoding,
                auth,
                retry: cfg.retry,
                counters: Counters::default(),
            }),
        })
    }

    /// The push URL.
    pub fn url(&self) -> &str {
        self.inner.url.as_str()
    }

    /// A snapshot of the cumulative counters.
    pub fn stats(&self) -> LokiStats {
        let c = &self.inner.counters;
        LokiStats {
            requests: c.requests.load(Relaxed),
            request_nanos: c.request_nanos.load(Relaxed),
            batches_delivered: c.batches_delivered.load(Relaxed),
            entries_delivered: c.entries_delivered.load(Relaxed),
            bytes_delivered: c.bytes_delivered.load(Relaxed),
            wire_bytes_delivered: c.wire_bytes_delivered.load(Relaxed),
            batches_rejected_bad_request: c.rejected_bad_request.load(Relaxed),
            batches_rejected_client_error: c.rejected_client_error.load(Relaxed),
            batches_rejected_retries_exhausted: c.rejected_exhausted.load(Relaxed),
            entries_rejected: c.entries_rejected.load(Relaxed),
            retries_rate_limited: c.retries_rate_limited.load(Relaxed),
            retries_server_error: c.retries_server_error.load(Relaxed),
            retries_connection: c.retries_connection.load(Relaxed),
            batches_in_flight: c.in_flight.load(Relaxed),
            batches_failing: c.failing.load(Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Sends a batch, retrying 429 (honouring `Retry-After`), 5xx and connection errors with
    /// exponential backoff and jitter; never retries other 4xx. Cancel-safe: dropping the future
    /// abandons the batch (its offsets stay uncommitted).
    pub async fn send(&self, batch: LokiBatch) -> BatchOutcome {
        let c = &self.inner.counters;
        let _gauge = GaugeGuard::new(&c.in_flight, metrics().loki_batches_in_flight());
        let started = Instant::now();
        let wire = batch.into_wire();
        let (body, raw_len, content_type) = wire.encode(self.inner.encoding);
        let mut stats = SendStats {
            wire_bytes: body.len(),
            streams: wire.request.streams.len(),
            ..SendStats::default()
        };
        let retry = self.inner.retry;
        let mut backoff = retry.initial_backoff;
        let mut failing: Option<GaugeGuard<'_>> = None;
        loop {
            stats.attempts += 1;
            let t0 = Instant::now();
            let attempt = self
                .attempt(body.clone(), content_type, wire.tenant.as_deref())
                .await;
            stats.request_latency = t0.elapsed();
            metrics().loki_attempt(stats.request_latency);
            c.requests.fetch_add(1, Relaxed);
            c.request_nanos
                .fetch_add(stats.request_latency.as_nanos() as u64, Relaxed);
            let (cause, status, after, text) = match attempt {
                Attempt::Delivered => {
                    stats.latency = started.elapsed();
                    c.batches_delivered.fetch_add(1, Relaxed);
                    c.entries_delivered.fetch_add(wire.entries as u64, Relaxed);
                    c.bytes_delivered.fetch_add(raw_len as u64, Relaxed);
                    c.wire_bytes_delivered.fetch_add(body.len() as u64, Relaxed);
                    drop(failing);
                    return BatchOutcome::Delivered {
                        origins: wire.all_origins(),
                        entries: wire.entries,
                        bytes: raw_len,
                        stats,
                    };
                }
                Attempt::Permanent { status, text } => {
                    let cause = if status == 400 {
                        RejectCause::BadRequest
                    } else {
                        RejectCause::ClientError
                    };
                    self.note_error(format!("HTTP {status}: {text}"));
                    stats.latency = started.elapsed();
                    drop(failing);
                    return self.rejected(&wire, status, text, cause, stats);
                }
                Attempt::Retry {
                    cause,
                    status,
                    after,
                    text,
                } => (cause, status, after, text),
            };
            self.note_error(if status == 0 {
                text.clone()
            } else {
                format!("HTTP {status}: {text}")
            });
            if failing.is_none() {
                // Once per failing batch (not per attempt): what an operator must read.
                crate::telemetry::loki_push_failing(&text);
                failing = Some(GaugeGuard::new(
                    &c.failing,
                    metrics().loki_batches_failing(),
                ));
            }
            if retry.max_attempts.is_some_and(|m| stats.attempts >= m) {
                stats.latency = started.elapsed();
                let reason = format!("gave up after {} attempts: {text}", stats.attempts);
                drop(failing);
                return self.rejected(&wire, status, reason, RejectCause::RetriesExhausted, stats);
            }
            match cause {
                RetryCause::RateLimited => {
                    metrics().loki_retry("rate_limited");
                    stats.retries_rate_limited += 1;
                    c.retries_rate_limited.fetch_add(1, Relaxed);
                }
                RetryCause::ServerError => {
                    metrics().loki_retry("server_error");
                    stats.retries_server_error += 1;
                    c.retries_server_error.fetch_add(1, Relaxed);
                }
                RetryCause::Connection => {
                    metrics().loki_retry("connection");
                    stats.retries_connection += 1;
                    c.retries_connection.fetch_add(1, Relaxed);
                }
                RetryCause::Tls => {
                    metrics().loki_retry("tls");
                    stats.retries_connection += 1;
                    c.retries_connection.fetch_add(1, Relaxed);
                }
            }
            let delay = match after {
                Some(d) => d.min(MAX_RETRY_AFTER),
                None => jitter(backoff),
            };
            backoff = (backoff * 2).min(retry.max_backoff);
            tokio::time::sleep(delay).await;
        }
    }

    fn note_error(&self, e: String) {
        *self
            .inner
            .counters
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    fn rejected(
        &self,
        wire: &WireBatch,
        status: u16,
        reason: String,
        cause: RejectCause,
        stats: SendStats,
    ) -> BatchOutcome {
        let c = &self.inner.counters;
        match cause {
            RejectCause::BadRequest => &c.rejected_bad_request,
            RejectCause::ClientError => &c.rejected_client_error,
            RejectCause::RetriesExhausted => &c.rejected_exhausted,
        }
        .fetch_add(1, Relaxed);
        c.entries_rejected.fetch_add(wire.entries as u64, Relaxed);
        BatchOutcome::Rejected {
            origins: wire.all_origins(),
            status,
            reason,
            payload: wire.dead_letter_payload(),
            cause,
            stats,
        }
    }

    async fn attempt(
        &self,
        body: bytes::Bytes,
        content_type: &str,
        tenant: Option<&str>,
    ) -> Attempt {
        let inner = &self.inner;
        let mut req = inner
            .http
            .post(inner.url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        req = match &inner.auth {
            None => req,
            Some(Auth::Basic { user, password }) => req.basic_auth(user, Some(password.current())),
            Some(Auth::Bearer { token }) => req.bearer_auth(token.current()),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let chain = error_chain(&e);
                let (cause, text) = match tls_failure(&chain) {
                    Some(why) => (RetryCause::Tls, format!("TLS: {why} ({chain})")),
                    None => (RetryCause::Connection, chain),
                };
                return Attempt::Retry {
                    cause,
                    status: 0,
                    after: None,
                    text,
                };
            }
        };
        let status = resp.status();
        if status.is_success() {
            // Drain a (normally empty) body so the connection goes back to the pool.
            let _ = resp.bytes().await;
            return Attempt::Delivered;
        }
        let code = status.as_u16();
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = read_reason(resp).await;
        if code == 429 {
            Attempt::Retry {
                cause: RetryCause::RateLimited,
                status: code,
                after,
                text,
            }
        } else if status.is_server_error() {
            Attempt::Retry {
                cause: RetryCause::ServerError,
                status: code,
                after,
                text,
            }
        } else {
            Attempt::Permanent { status: code, text }
        }
    }
}

/// Counts one batch in a client's gauge and the matching exported one while it lives.
struct GaugeGuard<'a>(&'a AtomicI64, &'static prometheus::IntGauge);
impl<'a> GaugeGuard<'a> {
    fn new(counter: &'a AtomicI64, exported: &'static prometheus::IntGauge) -> Self {
        counter.fetch_add(1, Relaxed);
        exported.inc();
        GaugeGuard(counter, exported)
    }
}
impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
        self.1.dec();
    }
}

/// A delay drawn uniformly from [d/2, d].
fn jitter(d: Duration) -> Duration {
    d / 2 + d.mul_f64(rand::random::<f64>() / 2.0)
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e6)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Up to 1KiB of the response body, as text.
async fn read_reason(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < MAX_REASON_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let truncated = buf.len() > MAX_REASON_BYTES;
    buf.truncate(MAX_REASON_BYTES);
    let mut s = String::from_utf8_lossy(&buf).trim().to_string();
    if truncated {
        s.push('…');
    }
    s
}

/// An error and its sources, `: `-separated (reqwest's own message alone hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}
