//! The real binary against the secured broker (`scripts/kafka.sh start-secure`: SASL_SSL with
//! SCRAM-SHA-512, mTLS, the StandardAuthorizer with ACLs).
//!
//! - Over SASL_SSL and over mTLS, with ACLs allowing the principal exactly its topics, its
//!   internal topics (`<group>.` prefixed) and its groups: every log comes out enriched, the
//!   undecodable record is dead-lettered.
//! - A wrong password, an untrusted broker certificate and a client certificate of another CA
//!   are each named (log line, `/readyz` body, `tracejoin_kafka_connect_failures_total`) while
//!   the process stays up, not ready, and retries; SIGTERM still stops it cleanly.
//! - Without Write on the output topic nothing is committed past the refused logs and the
//!   authorization error is logged; once the ACL is created every log comes out.
//! - Secrets given as `{env: NAME}` and `{file: PATH}` (a SASL password, a key password) never
//!   appear in anything the process prints, `/metrics`, `/readyz` or `tracejoin check`.

mod common;

use common::load::trace_records;
use common::secure::{self, allow, On, Op};
use common::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the process under test connects.
enum Auth {
    /// SCRAM user `tracejoin`, the password from `{env: TRACEJOIN_TEST_KAFKA_PASSWORD}` or a
    /// file.
    Scram { password: Secret },
    /// The client certificate of `cert`/`key` (key password from a file), trusting `ca`.
    Mtls {
        ca: String,
        cert: String,
        key: String,
    },
    /// SASL/OAUTHBEARER with librdkafka's OIDC client-credentials flow against `token_url`.
    Oidc { token_url: String, secret: Secret },
}

/// The client id the test's token endpoint accepts (with [`OIDC_SECRET`]).
const OIDC_CLIENT: &str = "tracejoin-client";
const OIDC_SECRET: &str = "planted-oidc-client-secret-5d1e";

/// A token endpoint (OAuth 2.0 client credentials, RFC 6749 §4.4) on a free port: for
/// `OIDC_CLIENT` with `OIDC_SECRET` in HTTP basic auth it hands out the JWT the secured
/// broker's identity provider signed (`OIDC_TOKEN_FILE`, verified by the broker against its
/// JWKS); anything else gets 401 `invalid_client`. With `ttl`, each token is signed anew for
/// that many seconds (`scripts/oidc-fixture.py sign`). Returns its URL, how many tokens it gave,
/// and a switch that makes it refuse everyone.
async fn token_endpoint(
    ttl: Option<u64>,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use axum::http::{header, HeaderMap, StatusCode};
    use base64::Engine as _;
    use std::sync::atomic::Ordering::Relaxed;
    let token_file = PathBuf::from(secure::env("OIDC_TOKEN_FILE"));
    let token = std::fs::read_to_string(&token_file).unwrap();
    let sign = move || {
        let Some(ttl) = ttl else {
            return token.clone();
        };
        let out = std::process::Command::new("python3")
            .arg(repo().join("scripts/oidc-fixture.py"))
            .arg("sign")
            .arg(token_file.parent().unwrap())
            .args([
                "tracejoin-oidc",
                "kafka",
                "tracejoin-test-idp",
                &ttl.to_string(),
            ])
            .output()
            .expect("oidc-fixture.py sign");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let lifetime = ttl.unwrap_or(3600);
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (counter, refuse) = (issued.clone(), refusing.clone());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{OIDC_CLIENT}:{OIDC_SECRET}"))
    );
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (sign, expected, counter, refuse) =
                (sign.clone(), expected.clone(), counter.clone(), refuse.clone());
            async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                if refuse.load(Relaxed)
                    || auth != Some(expected.as_str())
                    || !body.contains("grant_type=client_credentials")
                {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"error":"invalid_client"}"#.to_string(),
                    );
                }
                counter.fetch_add(1, Relaxed);
                let token = tokio::task::spawn_blocking(sign).await.unwrap();
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    format!(
                        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{lifetime}}}"#
                    ),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/token"), issued, refusing)
}

/// Where a planted secret is given.
enum Secret {
    Env(String),
    File(String),
}

struct Run {
    dir: tempfile::TempDir,
    group: String,
    t: Topics,
    metrics_port: u16,
}

const PASSWORD_VAR: &str = "TRACEJOIN_TEST_KAFKA_PASSWORD";

impl Run {
    async fn new(prefix: &str) -> Run {
        let t = Topics {
            spans: unique(&format!("{prefix}spans")),
            logs: unique(&format!("{prefix}logs")),
            out: unique(&format!("{prefix}out")),
            dlq: unique(&format!("{prefix}dlq")),
        };
        secure::create_topics(&[&t.spans, &t.logs, &t.out, &t.dlq], 1).await;
        Run {
            dir: tempfile::tempdir().unwrap(),
            group: unique(&format!("{prefix}group")),
            t,
            metrics_port: free_port(),
        }
    }

    /// Allows `principal` exactly what tracejoin needs, less Write on the output topic when
    /// `write_out` is false.
    fn grant(&self, principal: &str, write_out: bool) {
        let t = &self.t;
        allow(principal, On::Topic(&t.spans), &[Op::Read, Op::Describe]);
        allow(principal, On::Topic(&t.logs), &[Op::Read, Op::Describe]);
        if write_out {
            allow(principal, On::Topic(&t.out), &[Op::Write, Op::Describe]);
        }
        allow(principal, On::Topic(&t.dlq), &[Op::Write, Op::Describe]);
        // Internal topics: `<group>.repartition.*`, `<group>.slo-state`.
        let internal = format!("{}.", self.group);
        allow(
            principal,
            On::TopicPrefix(&internal),
            &[Op::Create, Op::Read, Op::Write, Op::Describe, Op::Delete],
        );
        // The group and its helpers (`<group>.repartition-sample`, `<group>.slo-state-restore`).
        allow(
            principal,
            On::GroupPrefix(&self.group),
            &[Op::Read, Op::Describe],
        );
    }

    /// Writes the config, and any secret file, for `auth`; returns its path.
    fn config(&self, name: &str, bootstrap: &str, auth: &Auth, repartition: &str) -> PathBuf {
        let dir = self.dir.path();
        let secret_yaml = |key: &str, s: &Secret| match s {
            Secret::Env(var) => format!("    {key}: {{env: {var}}}\n"),
            Secret::File(value) => {
                let path = dir.join(format!("{name}.{key}"));
                std::fs::write(&path, format!("{value}\n")).unwrap();
                format!("    {key}: {{file: {}}}\n", path.display())
            }
        };
        let properties = match auth {
            Auth::Scram { password } => format!(
                "    security.protocol: SASL_SSL\n    sasl.mechanisms: SCRAM-SHA-512\n    sasl.username: {}\n{}    ssl.ca.location: {}\n",
                secure::env("SCRAM_USER"),
                secret_yaml("sasl.password", password),
                secure::env("CA_FILE")
            ),
            Auth::Mtls { ca, cert, key } => format!(
                "    security.protocol: SSL\n    ssl.ca.location: {ca}\n    ssl.certificate.location: {cert}\n    ssl.key.location: {key}\n{}",
                secret_yaml(
                    "ssl.key.password",
                    &Secret::File(secure::env("CLIENT_KEY_PASSWORD"))
                )
            ),
            Auth::Oidc { token_url, secret } => format!(
                "    security.protocol: SASL_SSL
    sasl.mechanisms: OAUTHBEARER
    sasl.oauthbearer.method: oidc
    sasl.oauthbearer.client.id: {OIDC_CLIENT}
{}    sasl.oauthbearer.token.endpoint.url: {token_url}
    sasl.oauthbearer.scope: kafka
    ssl.ca.location: {}
",
                secret_yaml("sasl.oauthbearer.client.secret", secret),
                secure::env("CA_FILE")
            ),
        };
        let t = &self.t;
        let yaml = format!(
            "workers: 1\n\
             kafka:\n  bootstrap_servers: \"{bootstrap}\"\n  group_id: {group}\n  commit_interval: 500ms\n  properties:\n    session.timeout.ms: \"6000\"\n{properties}\
             inputs:\n  spans: {{topic: {spans}}}\n  logs: [{{topic: {logs}, format: json}}]\n  repartition: {repartition}\n\
             outputs:\n  kafka: {{topic: {out}}}\n  dead_letter: {{topic: {dlq}}}\n\
             metrics:\n  listen: \"127.0.0.1:{port}\"\n\
             join:\n  max_wait: 3s\n  allowed_lateness: 500ms\n  idle_timeout: 2s\n",
            group = self.group,
            spans = t.spans,
            logs = t.logs,
            out = t.out,
            dlq = t.dlq,
            port = self.metrics_port,
        );
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// Produces `traces` traces (two logs each) and one undecodable span record, as the super
    /// user; returns the logs' markers.
    async fn produce(&self, traces: u64) -> HashSet<String> {
        let p = secure::producer();
        let mut ids = HashSet::new();
        for n in 0..traces {
            let (records, expects) = trace_records(n, now_nanos());
            for (to_spans, key, payload) in records {
                let topic = if to_spans {
                    &self.t.spans
                } else {
                    &self.t.logs
                };
                produce(&p, topic, Some(&key), &payload).await;
            }
            ids.extend(expects.into_iter().map(|(id, _)| id));
        }
        produce(
            &p,
            &self.t.spans,
            Some("garbage"),
            b"\xff\xffnot a protobuf",
        )
        .await;
        ids
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.metrics_port)
    }
}

/// Starts the binary with `config`; `PASSWORD_VAR` is set to `password` for it.
fn spawn(config: &Path, name: &str, password: &str) -> Process {
    Process::spawn_with_env(config, name, &[(PASSWORD_VAR, password)])
}

/// `GET url`: status and body; `None` while nothing listens.
async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Polls `url` until `f(status, body)`; panics with `what` and the process's log after `within`.
async fn wait_http(
    url: &str,
    within: Duration,
    what: &str,
    log: &Path,
    f: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some((status, body)) = get(url).await {
            if f(status, &body) {
                return (status, body);
            }
            last = Some((status, body));
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer {last:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Reads the output topic (as the super user) until every marker in `want` is there.
async fn wait_for_markers(topic: &str, want: &HashSet<String>, within: Duration, log: &Path) {
    let deadline = Instant::now() + within;
    loop {
        let t = topic.to_string();
        let got =
            tokio::task::spawn_blocking(move || secure::read_all(&t, Duration::from_secs(30)))
                .await
                .unwrap();
        let seen: HashSet<String> = got
            .iter()
            .filter_map(|r| log_id(r.json()["body"].as_str().unwrap_or_default()))
            .collect();
        let missing: Vec<_> = want.difference(&seen).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} logs never came out of {topic} (e.g. {:?}); log:\n{}",
            missing.len(),
            want.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asserts no planted secret is in `text` (named `what`).
fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "a secret appears in {what}:\n{text}");
    }
}

/// SIGTERM; the process must exit 0.
async fn stop(p: Process) -> String {
    let log = p.log.clone();
    let status = tokio::task::spawn_blocking(move || p.terminate(Duration::from_secs(40)))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit status {status}; log:\n{text}");
    text
}

/// Runs the happy path for `auth` and checks outputs, dead letters and that the planted
/// secrets appear nowhere the process printed or served.
async fn end_to_end(prefix: &str, bootstrap: &str, principal: &str, auth: Auth, secrets: &[&str]) {
    let run = Run::new(prefix).await;
    run.grant(principal, true);
    // Over SASL the internal topics are exercised too: re-keying needs Create, Write and Read on
    // `<group>.repartition.*`.
    let repartition = match auth {
        Auth::Scram { .. } | Auth::Oidc { .. } => "always",
        Auth::Mtls { .. } => "never",
    };
    let config = run.config("run", bootstrap, &auth, repartition);
    let env_password = match &auth {
        Auth::Scram {
            password: Secret::Env(_),
        } => secure::env("SCRAM_PASSWORD"),
        _ => String::new(),
    };
    let want = run.produce(20).await;
    let p = match &auth {
        Auth::Scram { .. } => spawn(&config, "run", &env_password),
        Auth::Mtls { .. } | Auth::Oidc { .. } => Process::spawn(&config, "run"),
    };
    wait_for_markers(&run.t.out, &want, Duration::from_secs(60), &p.log).await;
    let dlq = secure::read_all(&run.t.dlq, Duration::from_secs(30));
    assert_eq!(
        dlq.len(),
        1,
        "the undecodable span record is dead-lettered once"
    );
    let (_, ready) = wait_http(
        &run.url("/readyz"),
        Duration::from_secs(30),
        "ready",
        &p.log,
        |s, _| s == 200,
    )
    .await;
    let (_, metrics) = wait_http(
        &run.url("/metrics"),
        Duration::from_secs(10),
        "/metrics",
        &p.log,
        |s, _| s == 200,
    )
    .await;
    assert!(metrics.contains("tracejoin_records_produced_total"));
    let check = std::process::Command::new(binary())
        .args(["check", "--config"])
        .arg(&config)
        .env(PASSWORD_VAR, &env_password)
        .output()
        .expect("tracejoin check");
    let check_out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "tracejoin check: {check_out}");
    let log = stop(p).await;
    for (what, text) in [
        ("the process's output", &log),
        ("/metrics", &metrics),
        ("/readyz", &ready),
        ("tracejoin check", &check_out),
    ] {
        assert_no_secret(what, text, secrets);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_sasl_ssl_scram_with_exact_acls_everything_flows() {
    let password = secure::env("SCRAM_PASSWORD");
    end_to_end(
        "sasl-",
        &secure::env("SASL_SSL_BOOTSTRAP"),
        &format!("User:{}", secure::env("SCRAM_USER")),
        Auth::Scram {
            password: Secret::Env(PASSWORD_VAR.into()),
        },
        &[&password],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mtls_with_exact_acls_everything_flows() {
    let key_password = secure::env("CLIENT_KEY_PASSWORD");
    end_to_end(
        "mtls-",
        &secure::env("MTLS_BOOTSTRAP"),
        &secure::env("MTLS_PRINCIPAL"),
        Auth::Mtls {
            ca: secure::env("CA_FILE"),
            cert: secure::env("CLIENT_CERT"),
            key: secure::env("CLIENT_KEY"),
        },
        &[&key_password],
    )
    .await;
}

/// OAUTHBEARER through librdkafka's OIDC client-credentials flow: librdkafka asks the test's
/// token endpoint for a token with the client secret (from a file), the broker verifies the
/// token's RS256 signature against its identity provider's JWKS, and the principal is the
/// token's subject, allowed exactly its topics and group. A wrong client secret is refused by
/// the token endpoint: named (`SASL authentication failed`), not ready, never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_oauthbearer_oidc_with_exact_acls_everything_flows() {
    let (token_url, issued, _) = token_endpoint(None).await;
    end_to_end(
        "oidc-",
        &secure::env("OAUTH_BOOTSTRAP"),
        &secure::env("OIDC_PRINCIPAL"),
        Auth::Oidc {
            token_url: token_url.clone(),
            secret: Secret::File(OIDC_SECRET.into()),
        },
        &[OIDC_SECRET],
    )
    .await;
    assert!(
        issued.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the token came from the token endpoint"
    );

    let run = Run::new("oidc-refused-").await;
    let wrong = "planted-wrong-oidc-secret-91c2";
    let auth = Auth::Oidc {
        token_url,
        secret: Secret::File(wrong.into()),
    };
    let config = run.config(
        "wrong-secret",
        &secure::env("OAUTH_BOOTSTRAP"),
        &auth,
        "never",
    );
    let p = Process::spawn(&config, "wrong-secret");
    let (status, body) = wait_http(
        &run.url("/readyz"),
        Duration::from_secs(60),
        "oidc wrong secret: /readyz naming the cause",
        &p.log,
        |_, body| body.contains("SASL authentication failed"),
    )
    .await;
    assert_eq!(status, 503, "not ready while refused: {body}");
    let log = stop(p).await;
    for (what, text) in [("log", &log), ("/readyz", &body)] {
        assert_no_secret(
            &format!("oidc wrong secret: {what}"),
            text,
            &[wrong, OIDC_SECRET],
        );
    }
}

/// A refusal after start-up: tokens valid for 20 s (librdkafka refreshes them at 80 % of their
/// life), then the identity provider refuses the client. The failed refresh is a refusal of the
/// running consumer: `/readyz` turns 503 naming it; once the provider accepts the client again,
/// `/readyz` is 200 again. The process stays up throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_start_up_turns_readyz_false_until_accepted_again() {
    use std::sync::atomic::Ordering::Relaxed;
    let (token_url, issued, refusing) = token_endpoint(Some(20)).await;
    let run = Run::new("oidc-later-").await;
    run.grant(&secure::env("OIDC_PRINCIPAL"), true);
    let auth = Auth::Oidc {
        token_url,
        secret: Secret::File(OIDC_SECRET.into()),
    };
    let config = run.config("later", &secure::env("OAUTH_BOOTSTRAP"), &auth, "never");
    let p = Process::spawn(&config, "later");
    let ready = |s: u16, _: &str| s == 200;
    wait_http(
        &run.url("/readyz"),
        Duration::from_secs(60),
        "ready",
        &p.log,
        ready,
    )
    .await;
    let before = issued.load(Relaxed);
    refusing.store(true, Relaxed);
    let refused_at = Instant::now();
    let (status, body) = wait_http(
        &run.url("/readyz"),
        Duration::from_secs(40),
        "/readyz naming the refusal after start-up",
        &p.log,
        |s, body| s == 503 && body.contains("SASL authentication failed"),
    )
    .await;
    eprintln!(
        "refused after {:.1} s ({before} tokens before): {status} {}",
        refused_at.elapsed().as_secs_f64(),
        body.trim()
    );
    assert!(body.contains("refuses the running consumer"), "{body}");
    refusing.store(false, Relaxed);
    let accepted_at = Instant::now();
    wait_http(
        &run.url("/readyz"),
        Duration::from_secs(60),
        "ready again",
        &p.log,
        ready,
    )
    .await;
    eprintln!(
        "ready again {:.1} s after the provider accepted the client",
        accepted_at.elapsed().as_secs_f64()
    );
    assert!(issued.load(Relaxed) > before, "a new token was issued");
    let log = stop(p).await;
    assert!(
        log.contains("kafka refuses the running consumer")
            && log.contains("kafka accepts the running consumer again"),
        "the log says both:\n{log}"
    );
    assert_no_secret("the process's output", &log, &[OIDC_SECRET]);
}

/// Each refusal is named in the log and in `/readyz` (503) and counted, the process stays up
/// and retries (documented in the README, Security), and SIGTERM stops it with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_named_and_the_process_stays_unready() {
    let mut run = Run::new("refused-").await;
    let wrong = "planted-wrong-password-7f3a";
    let cases = [
        (
            "wrong-password",
            secure::env("SASL_SSL_BOOTSTRAP"),
            Auth::Scram {
                password: Secret::File(wrong.into()),
            },
            "SASL authentication failed",
            "authentication",
        ),
        (
            "unknown-ca",
            secure::env("SASL_SSL_BOOTSTRAP"),
            Auth::Scram {
                password: Secret::Env(PASSWORD_VAR.into()),
            },
            "the broker's certificate is not trusted",
            "untrusted_broker_certificate",
        ),
        (
            "rogue-client-cert",
            secure::env("MTLS_BOOTSTRAP"),
            Auth::Mtls {
                ca: secure::env("CA_FILE"),
                cert: secure::env("ROGUE_CLIENT_CERT"),
                key: secure::env("ROGUE_CLIENT_KEY"),
            },
            "the broker refused the client certificate",
            "client_certificate_refused",
        ),
    ];
    for (name, bootstrap, auth, says, cause) in cases {
        run.metrics_port = free_port();
        let mut config = run.config(name, &bootstrap, &auth, "never");
        if name == "unknown-ca" {
            let yaml = std::fs::read_to_string(&config)
                .unwrap()
                .replace(&secure::env("CA_FILE"), &secure::env("ROGUE_CA_FILE"));
            config = run.dir.path().join("unknown-ca-rogue.yaml");
            std::fs::write(&config, yaml).unwrap();
        }
        let p = spawn(&config, name, &secure::env("SCRAM_PASSWORD"));
        let (status, body) = wait_http(
            &run.url("/readyz"),
            Duration::from_secs(60),
            &format!("{name}: /readyz naming the cause"),
            &p.log,
            |_, body| body.contains(says),
        )
        .await;
        assert_eq!(status, 503, "{name}: not ready while refused: {body}");
        let (_, metrics) = wait_http(
            &run.url("/metrics"),
            Duration::from_secs(10),
            "/metrics",
            &p.log,
            |s, _| s == 200,
        )
        .await;
        assert!(
            metrics.contains(&format!(
                "tracejoin_kafka_connect_failures_total{{cause=\"{cause}\"}}"
            )),
            "{name}: the refusal is counted by cause:\n{metrics}"
        );
        let mut p = p;
        assert!(
            p.child.try_wait().unwrap().is_none(),
            "{name}: the process keeps retrying rather than exiting"
        );
        let log = stop(p).await;
        assert!(
            log.contains("kafka refused the connection") && log.contains(says),
            "{name}: the log names the cause:\n{log}"
        );
        for (what, text) in [("log", &log), ("/readyz", &body), ("/metrics", &metrics)] {
            assert_no_secret(
                &format!("{name}: {what}"),
                text,
                &[
                    wrong,
                    &secure::env("SCRAM_PASSWORD"),
                    &secure::env("CLIENT_KEY_PASSWORD"),
                ],
            );
        }
    }
}

/// Without Write on the output topic the enriched logs are refused: the authorization error is
/// logged, nothing is committed past the refused logs, and once the ACL is granted every log
/// comes out. The SASL password comes from a file here, and appears nowhere in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_write_acl_holds_commits_until_granted() {
    let run = Run::new("acl-").await;
    let principal = format!("User:{}", secure::env("SCRAM_USER"));
    run.grant(&principal, false);
    let password = secure::env("SCRAM_PASSWORD");
    let config = run.config(
        "run",
        &secure::env("SASL_SSL_BOOTSTRAP"),
        &Auth::Scram {
            password: Secret::File(password.clone()),
        },
        "never",
    );
    let want = run.produce(10).await;
    let p = Process::spawn(&config, "run");
    // The refusal is surfaced…
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
        if log.contains("Topic authorization failed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no authorization error in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // …the dead letter (Write allowed there) goes through, so the pipeline does run and commit
    // where it may…
    wait_for_count(&run.t.dlq, 1, &p.log).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // …but no log whose output was refused is committed: every log is still to be read.
    let (group, logs) = (run.group.clone(), run.t.logs.clone());
    let committed = tokio::task::spawn_blocking(move || secure::committed(&group, &logs, 1))
        .await
        .unwrap();
    assert!(
        committed[0] <= 0,
        "logs committed past the refused outputs: {committed:?}"
    );
    assert!(secure::read_all(&run.t.out, Duration::from_secs(30)).is_empty());
    allow(
        &principal,
        On::Topic(&run.t.out),
        &[Op::Write, Op::Describe],
    );
    wait_for_markers(&run.t.out, &want, Duration::from_secs(60), &p.log).await;
    let log = stop(p).await;
    assert_no_secret("the process's output", &log, &[&password]);
}

async fn wait_for_count(topic: &str, n: usize, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = topic.to_string();
        let got =
            tokio::task::spawn_blocking(move || secure::read_all(&t, Duration::from_secs(30)))
                .await
                .unwrap();
        if got.len() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} has {} records, want {n}; log:\n{}",
            got.len(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
