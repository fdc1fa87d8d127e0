//! `/metrics`, `/healthz` and `/readyz` over HTTP.
//!
//! `/healthz` answers 200 while the process serves at all (liveness). `/readyz` answers 200 once
//! the process's workers are members of the consumer group (each has had an assignment, or the
//! start-up deadline passed) — whether or not they got partitions: with more members than
//! partitions a member without any is a standby, and must not fail a rollout — and through
//! rebalances; 503 before, and from the start of a graceful shutdown (readiness: a rolling
//! restart waits for it). While the cluster refuses the process (wrong credentials, an untrusted
//! certificate), `/readyz` says so in its body. `/metrics` renders the processor's own metrics and
//! every extra registry the pipeline adds (RED metrics), in the Prometheus text format, or in
//! OpenMetrics with exemplars when the scraper asks for it (`Accept:
//! application/openmetrics-text`, as Prometheus does with `--enable-feature=exemplar-storage`);
//! with `metrics.basic_auth_users` it asks for credentials (`auth`), the probes do not.

use super::auth::BasicAuth;
use super::openmetrics;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Shared with the pipeline.
#[derive(Clone, Default)]
pub struct Health {
    /// Bit `i`: worker `i` has partitions (workers past 63 share bit 63).
    ready: Arc<AtomicU64>,
    /// Why the process cannot become ready (a refused connection to Kafka), for `/readyz`.
    problem: Arc<std::sync::Mutex<Option<String>>>,
    /// Workers whose running consumer the cluster refuses (after start-up), and why: the
    /// process is not ready while any is.
    refused: Arc<std::sync::Mutex<std::collections::BTreeMap<usize, String>>>,
    extra: Arc<std::sync::Mutex<Vec<Registry>>>,
    exemplars: Arc<std::sync::Mutex<Vec<ExemplarSource>>>,
}

/// Fills in the exemplars of the series it knows (`openmetrics::series_key`).
pub type ExemplarSource = Box<dyn Fn(&mut openmetrics::Exemplars) + Send + Sync>;

impl Health {
    /// Marks the processor ready (a member of the group) or not (as worker 0).
    pub fn set_ready(&self, ready: bool) {
        self.set_worker_ready(0, ready);
    }
    /// Marks one worker as a member of the group or not; the process is ready while any is.
    pub fn set_worker_ready(&self, worker: usize, ready: bool) {
        let bit = 1u64 << worker.min(63);
        if ready {
            self.ready.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.ready.fetch_and(!bit, Ordering::Relaxed);
        }
    }
    /// Says why the process is not ready (`None`: nothing known against it). Never a secret:
    /// callers pass scrubbed messages.
    pub fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }
    /// Why the process is not ready, if known.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Whether ready: a member of the group, and no running consumer refused by the cluster.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) != 0 && self.kafka_refused().is_none()
    }
    /// Worker `worker`'s consumer is refused by the cluster (`Some(why)`, scrubbed) or accepted
    /// again (`None`). Returns whether that changed anything.
    pub fn set_kafka_refused(&self, worker: usize, why: Option<String>) -> bool {
        let mut r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match why {
            Some(w) => r.insert(worker, w).is_none(),
            None => r.remove(&worker).is_some(),
        }
    }
    /// Why the cluster refuses a running consumer, if it does (the lowest worker's reason).
    pub fn kafka_refused(&self) -> Option<String> {
        let r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().next().map(|(w, why)| format!("worker {w}: {why}"))
    }
    /// Adds a registry whose metrics `/metrics` renders too.
    pub fn add_registry(&self, r: Registry) {
        self.extra.lock().expect("not poisoned").push(r);
    }
    /// Adds a source of exemplars for the OpenMetrics exposition.
    pub fn add_exemplars(&self, source: ExemplarSource) {
        self.exemplars.lock().expect("not poisoned").push(source);
    }

    fn families(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut families = super::metrics().registry().gather();
        for r in self.extra.lock().expect("not poisoned").iter() {
            families.extend(r.gather());
        }
        families
    }

    /// The full exposition, Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.families(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The full exposition, OpenMetrics with exemplars.
    pub fn render_openmetrics(&self) -> String {
        let families = self.families();
        let mut exemplars = openmetrics::Exemplars::new();
        for source in self.exemplars.lock().expect("not poisoned").iter() {
            source(&mut exemplars);
        }
        openmetrics::encode(&families, &exemplars)
    }
}

/// Whether the scraper takes OpenMetrics (Prometheus lists it first when it stores exemplars).
fn wants_openmetrics(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let mut parts = t.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

/// What the handlers share.
#[derive(Clone)]
struct App {
    health: Health,
    auth: Arc<BasicAuth>,
}

async fn metrics_handler(State(app): State<App>, headers: HeaderMap) -> Response {
    if app.auth.enabled() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let auth = app.auth.clone();
        let allowed = tokio::task::spawn_blocking(move || auth.allows(given.as_deref()))
            .await
            .unwrap_or(false);
        if !allowed {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"tracejoin\"")],
                "unauthorized\n",
            )
                .into_response();
        }
    }
    if wants_openmetrics(&headers) {
        (
            [("content-type", openmetrics::CONTENT_TYPE)],
            app.health.render_openmetrics(),
        )
            .into_response()
    } else {
        (
            [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
            app.health.render(),
        )
            .into_response()
    }
}

async fn ready_handler(State(App { health: h, .. }): State<App>) -> impl IntoResponse {
    if h.is_ready() {
        (StatusCode::OK, "ready\n".to_string())
    } else if let Some(refused) = h.kafka_refused() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the cluster refuses the running consumer ({refused})\n"),
        )
    } else if let Some(problem) = h.problem() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {problem}\n"),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not yet a member of the consumer group, or shutting down\n".to_string(),
        )
    }
}

/// Binds `addr` and serves until `shutdown`, `/metrics` open to anyone; returns the bound
/// address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    serve_with_auth(addr, health, BasicAuth::default(), shutdown).await
}

/// `serve`, with `/metrics` behind `auth`.
pub async fn serve_with_auth(
    addr: SocketAddr,
    health: Health,
    auth: BasicAuth,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    serve_with(addr, health, auth, None, shutdown).await
}

/// `serve`, with `/metrics` behind `auth`, and every path over HTTPS when `tls` is given
/// (`metrics.tls`: its client verifier, if any, applies to the probes too — the whole port
/// speaks only TLS).
pub async fn serve_with(
    addr: SocketAddr,
    health: Health,
    auth: BasicAuth,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(App {
            health,
            auth: Arc::new(auth),
        });
    match tls {
        None => {
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await;
            });
        }
        Some(config) => {
            let listener = TlsListener::new(listener, config, shutdown.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await;
            });
        }
    }
    Ok(bound)
}

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A listener whose connections have finished their TLS handshake. Handshakes run in their own
/// tasks, so a slow or silent client (or a plain-HTTP one, refused by the handshake) holds up no
/// other connection; the finished ones come through a channel.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(
        tcp: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> Self {
        let local = tcp.local_addr().expect("bound");
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => {
                            // Out of file descriptors and the like: axum's own listener waits too.
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => super::metrics_tls_handshake_failed(peer, &e),
                        Err(_) => super::metrics_tls_handshake_failed(
                            peer,
                            &std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "handshake timed out",
                            ),
                        ),
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A running consumer the cluster refuses makes the process not ready, with the reason in
    /// `/readyz`, until every refused worker is accepted again.
    #[tokio::test]
    async fn a_refusal_after_start_up_turns_readyz_false_until_accepted() {
        let health = Health::default();
        health.set_worker_ready(0, true);
        health.set_worker_ready(1, true);
        let shutdown = CancellationToken::new();
        let addr = serve(
            "127.0.0.1:0".parse().unwrap(),
            health.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let readyz = || async {
            let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        assert_eq!(readyz().await.0, 200);
        assert!(health.set_kafka_refused(1, Some("kafka SASL authentication failed".into())));
        assert!(
            !health.set_kafka_refused(1, Some("again".into())),
            "not a change"
        );
        assert!(health.set_kafka_refused(0, Some("kafka SASL authentication failed".into())));
        let (status, body) = readyz().await;
        assert_eq!(status, 503);
        assert!(
            body.contains(
                "refuses the running consumer (worker 0: kafka SASL authentication failed)"
            ),
            "{body}"
        );
        assert!(health.set_kafka_refused(0, None));
        assert!(!health.is_ready(), "worker 1 is still refused");
        assert!(health.set_kafka_refused(1, None));
        assert_eq!(readyz().await.0, 200);
        shutdown.cancel();
    }

    /// Prometheus' web-config behaviour: `/metrics` answers 401 with a Basic challenge unless
    /// the credentials are a listed user's; the probes stay open.
    #[tokio::test]
    async fn metrics_behind_basic_auth_and_probes_open() {
        let hash = bcrypt::hash("scrape-pw", 4).unwrap();
        let auth = BasicAuth::new([("prometheus".to_string(), hash)].into());
        let shutdown = CancellationToken::new();
        let addr = serve_with_auth(
            "127.0.0.1:0".parse().unwrap(),
            Health::default(),
            auth,
            shutdown.clone(),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let metrics = format!("http://{addr}/metrics");
        let anonymous = http.get(&metrics).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            "Basic realm=\"tracejoin\""
        );
        let wrong = http
            .get(&metrics)
            .basic_auth("prometheus", Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let right = http
            .get(&metrics)
            .basic_auth("prometheus", Some("scrape-pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
        let health = http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        shutdown.cancel();
    }
}
