//! `/metrics` over HTTPS (`metrics.tls`, Prometheus web-config's `tls_server_config`) with a
//! required client certificate and basic auth, scraped by a real Prometheus (Debian's) over
//! https with its `tls_config`: the scrape with the CA, the client certificate and the password
//! is up and its samples are stored; the same target without a client certificate, with the
//! wrong CA, or over plain HTTP is down, with Prometheus' own error saying why. The real
//! `tracejoin run` binary serves it, from a config file whose TLS paths are relative to it.
//!
//! Needs `TRACEJOIN_KAFKA_BOOTSTRAP` (the process runs its pipeline), `prometheus` and `openssl`
//! on the PATH (`scripts/prometheus.sh install`); certificates come from `scripts/certs.sh`.

mod common;

use common::services::Prometheus;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "scrape-secret-7f3c";

fn client(dir: &Path, ca: &str, identity: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.join(ca)).unwrap()).unwrap(),
        )
        .timeout(Duration::from_secs(5));
    if let Some(name) = identity {
        let mut pem = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
        pem.extend(std::fs::read(dir.join(format!("{name}.key"))).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// Prometheus' view of each job's target: (health, lastError).
async fn targets(prom: &Prometheus) -> Vec<(String, String, String)> {
    let text = reqwest::get(format!("{}/api/v1/targets", prom.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    body["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["labels"]["job"].as_str().unwrap().to_string(),
                t["health"].as_str().unwrap().to_string(),
                t["lastError"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_over_https_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/certs.sh"))
        .arg(&tls)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let port = free_port();
    let t = Topics::create("", 1).await;
    // Relative TLS paths: taken from the config file's folder.
    let config = dir.path().join("tracejoin.yaml");
    std::fs::write(
        &config,
        format!(
            "kafka: {{bootstrap_servers: \"{}\", group_id: {}}}\n\
             inputs: {{spans: {{topic: {}}}, logs: [{{topic: {}}}]}}\n\
             outputs: {{kafka: {{topic: {}}}, dead_letter: {{topic: {}}}}}\n\
             metrics:\n  listen: \"127.0.0.1:{port}\"\n  basic_auth_users: {{prometheus: \"{hash}\"}}\n  \
             tls: {{cert_file: tls/server.crt, key_file: tls/server.key, client_ca_file: tls/ca.crt}}\n",
            bootstrap(),
            unique("metrics-tls"),
            t.spans,
            t.logs,
            t.out,
            t.dlq
        ),
    )
    .unwrap();
    let process = Process::spawn(&config, "metrics-tls");
    let base = format!("https://127.0.0.1:{port}");
    let good = client(&tls, "ca.crt", Some("client"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = good.get(format!("{base}/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no https /healthz within 30 s; log:\n{}",
            std::fs::read_to_string(&process.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // By hand: basic auth still guards /metrics behind TLS.
    let anonymous = good.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let authed = good
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(authed.status(), 200);
    assert!(authed
        .text()
        .await
        .unwrap()
        .contains("tracejoin_spans_total"));
    // Plain HTTP to the TLS port: no HTTP answer at all.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");
    // TLS without a client certificate, or with one of another CA: refused in the handshake.
    for who in [None, Some("rogue-client")] {
        let r = client(&tls, "ca.crt", who)
            .get(format!("{base}/healthz"))
            .send()
            .await;
        assert!(r.is_err(), "{who:?} got an answer: {r:?}");
    }
    // The server's certificate checked against another CA: refused by the client.
    let r = client(&tls, "rogue-ca.crt", Some("client"))
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "an untrusted server certificate was accepted");

    // A real Prometheus: one good job, three that must fail, each for its own reason.
    let td = tls.display();
    std::fs::write(tls.join("password"), PASSWORD).unwrap();
    let job = |name: &str, scheme: &str, tls_config: &str| {
        format!(
            "  - job_name: {name}\n    scheme: {scheme}\n    basic_auth: {{username: prometheus, password_file: {td}/password}}\n    tls_config: {tls_config}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )
    };
    let yaml = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\nscrape_configs:\n{}{}{}{}",
        job(
            "tracejoin",
            "https",
            &format!("{{ca_file: {td}/ca.crt, cert_file: {td}/client.crt, key_file: {td}/client.key}}")
        ),
        job("no_client_cert", "https", &format!("{{ca_file: {td}/ca.crt}}")),
        job(
            "wrong_ca",
            "https",
            &format!("{{ca_file: {td}/rogue-ca.crt, cert_file: {td}/client.crt, key_file: {td}/client.key}}")
        ),
        job("plain_http", "http", "{}"),
    );
    let prom = Prometheus::start_with_config(&yaml);
    let deadline = Instant::now() + Duration::from_secs(40);
    let seen = loop {
        let ts = targets(&prom).await;
        let settled = ts.len() == 4 && ts.iter().all(|(_, h, _)| h != "unknown");
        if settled {
            break ts;
        }
        assert!(
            Instant::now() < deadline,
            "targets not scraped within 40 s: {ts:?}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for (job, health, err) in &seen {
        eprintln!("prometheus job {job}: {health} {err}");
        match job.as_str() {
            "tracejoin" => assert_eq!(health, "up", "{job}: {err}"),
            "no_client_cert" => {
                assert_eq!(health, "down");
                assert!(err.contains("certificate"), "{job}: {err}");
            }
            "wrong_ca" => {
                assert_eq!(health, "down");
                assert!(err.contains("unknown authority"), "{job}: {err}");
            }
            "plain_http" => assert_eq!(health, "down", "{job}: {err}"),
            other => panic!("unexpected job {other}"),
        }
    }
    // What it scraped over https is stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!(
            "{}/api/v1/query?query=tracejoin_spans_total%7Bjob%3D%22tracejoin%22%7D",
            prom.url
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let q: serde_json::Value = serde_json::from_str(&text).unwrap();
        if q["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "no stored sample: {q}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log_path = process.log.clone();
    let status = process.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    // Nothing secret in what the process printed: not the scrape password, not a line of the
    // server's private key.
    let printed = std::fs::read_to_string(&log_path).unwrap();
    let key = std::fs::read_to_string(tls.join("server.key")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!printed.contains(PASSWORD), "the password was printed");
    assert!(!printed.contains(key_line), "the private key was printed");
    let serving = printed
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .unwrap_or_else(|| panic!("no start-up line: {printed}"));
    assert!(serving.contains("\"https\""), "{serving}");
}
