//! Handles of the real services the tests start and stop themselves, through the same scripts
//! as `scripts/test.sh` (`scripts/kafka.sh`, `scripts/victorialogs.sh`, `scripts/prometheus.sh`,
//! the Collector `scripts/collector.sh` built): each handle stops its service on drop, even
//! when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `scripts/<name>` with `args`; it must succeed. Returns the value of its `<key>=` line
/// on stdout (empty when there is none).
pub fn script(name: &str, args: &[&std::ffi::OsStr], key: &str) -> String {
    let out = Command::new("bash")
        .arg(super::repo().join("scripts").join(name))
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{name} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("{key}=");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(String::from))
        .unwrap_or_default()
}

/// The suite's VictoriaLogs (`TRACEJOIN_VICTORIALOGS_URL`, started by `scripts/test.sh`).
pub fn victorialogs_url() -> String {
    std::env::var("TRACEJOIN_VICTORIALOGS_URL").unwrap_or_else(|_| {
        panic!(
            "TRACEJOIN_VICTORIALOGS_URL is not set. These tests need a running VictoriaLogs: \
             `scripts/victorialogs.sh install && scripts/victorialogs.sh start /tmp/vl` prints \
             VICTORIALOGS_URL=…; export it as TRACEJOIN_VICTORIALOGS_URL (scripts/test.sh does this)."
        )
    })
}

/// A VictoriaLogs instance a test owns (for outages: stop it, start it again on the same port
/// and data). Stopped on drop.
pub struct VictoriaLogs {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub port: u16,
}

impl VictoriaLogs {
    /// Starts an instance on a free port with its data in a fresh temporary folder.
    pub fn start() -> VictoriaLogs {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vl");
        let port = Self::launch(&dir, None);
        VictoriaLogs {
            _tmp: tmp,
            dir,
            port,
        }
    }

    /// Runs `scripts/victorialogs.sh start DIR [PORT]`; returns the port it listens on.
    pub fn launch(dir: &Path, port: Option<u16>) -> u16 {
        let port_arg = port.map(|p| p.to_string()).unwrap_or_default();
        let mut args = vec![std::ffi::OsStr::new("start"), dir.as_os_str()];
        if port.is_some() {
            args.push(port_arg.as_ref());
        }
        let url = script("victorialogs.sh", &args, "VICTORIALOGS_URL");
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in VICTORIALOGS_URL={url:?}"))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data stays).
    pub fn stop(&self) {
        script(
            "victorialogs.sh",
            &["stop".as_ref(), self.dir.as_os_str()],
            "",
        );
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) {
        Self::launch(&self.dir, Some(self.port));
    }
}

impl Drop for VictoriaLogs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Kafka broker a test owns (for restarts; the suite's broker is `super::bootstrap()`).
/// Stopped on drop.
pub struct Broker {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    pub bootstrap: String,
}

impl Broker {
    pub fn start() -> Broker {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("kafka");
        let bootstrap = script(
            "kafka.sh",
            &["start".as_ref(), dir.as_os_str()],
            "BOOTSTRAP",
        );
        assert!(
            !bootstrap.is_empty(),
            "scripts/kafka.sh start printed no BOOTSTRAP="
        );
        Broker {
            _tmp: tmp,
            dir,
            bootstrap,
        }
    }

    /// Stops the broker and starts it again on the same port and data. Blocking.
    pub fn restart(&self) {
        script("kafka.sh", &["restart".as_ref(), self.dir.as_os_str()], "");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        script("kafka.sh", &["stop".as_ref(), self.dir.as_os_str()], "");
    }
}

/// A Prometheus scraping `target` every second. Stopped on drop.
pub struct Prometheus {
    dir: tempfile::TempDir,
    pub url: String,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = script(
            "prometheus.sh",
            &["start".as_ref(), dir.path().as_os_str(), target.as_ref()],
            "PROMETHEUS_URL",
        );
        assert!(
            !url.is_empty(),
            "scripts/prometheus.sh start printed no PROMETHEUS_URL= (is prometheus installed? \
             scripts/prometheus.sh install)"
        );
        Prometheus { dir, url }
    }

    /// A Prometheus with the caller's whole config (`prometheus.yml` text): a scrape over
    /// https with `tls_config`, for instance.
    pub fn start_with_config(yaml: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("prometheus.yml"), yaml).expect("write prometheus.yml");
        let url = script(
            "prometheus.sh",
            &["start-config".as_ref(), dir.path().as_os_str()],
            "PROMETHEUS_URL",
        );
        assert!(
            !url.is_empty(),
            "scripts/prometheus.sh start-config printed no PROMETHEUS_URL="
        );
        Prometheus { dir, url }
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

/// An instant query against the Prometheus at `url`: the result vector's samples. A query that
/// does not run is a failure (`what` names it in the message).
pub async fn prometheus_query(
    http: &reqwest::Client,
    url: &str,
    expr: &str,
    what: &str,
) -> Vec<serde_json::Value> {
    let text = http
        .get(format!("{url}/api/v1/query?query={}", urlencode(expr)))
        .send()
        .await
        .expect("query prometheus")
        .text()
        .await
        .expect("prometheus answers");
    let mut body: serde_json::Value = serde_json::from_str(&text).expect("prometheus answers JSON");
    assert_eq!(body["status"], "success", "{what}: {expr}: {body}");
    match body["data"]["result"].take() {
        serde_json::Value::Array(samples) => samples,
        other => panic!("{what}: {expr}: no result vector: {other}"),
    }
}

/// `s` as a URL query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(super::repo().join("scripts/prometheus.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// The Collector binary `scripts/collector.sh install` built (or `TRACEJOIN_OTELCOL_BIN`).
pub fn collector_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TRACEJOIN_OTELCOL_BIN") {
        return p.into();
    }
    let out = Command::new(super::repo().join("scripts/collector.sh"))
        .arg("bin")
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/collector.sh bin");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !path.is_empty(),
        "the OpenTelemetry Collector for this test is not built: run `scripts/collector.sh install` \
         (scripts/test.sh does), or set TRACEJOIN_OTELCOL_BIN"
    );
    path.into()
}

/// A Collector process; killed on drop, its log kept for failure messages.
pub struct Collector {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    pub metrics_url: String,
}

impl Collector {
    /// Runs the Collector on `config` (under `tests/collector/`) with `env`, its output in a
    /// log file of its own.
    fn spawn(config: &str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("otelcol.log");
        let child = Command::new(collector_bin())
            .arg(format!(
                "--config={}",
                super::repo().join("tests/collector").join(config).display()
            ))
            .env("TRACEJOIN_COLLECTOR_BROKERS", super::bootstrap())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .expect("start the Collector");
        Collector {
            child,
            log,
            _dir: dir,
            metrics_url: String::new(),
        }
    }

    pub fn start(topic: &str, cardinality_limit: usize) -> Self {
        let port = super::free_port();
        let mut c = Self::spawn(
            "config.yaml",
            &[
                ("TRACEJOIN_COLLECTOR_TOPIC", topic.to_string()),
                ("TRACEJOIN_COLLECTOR_GROUP", super::unique("otelcol")),
                ("TRACEJOIN_COLLECTOR_PROM_PORT", port.to_string()),
                (
                    "TRACEJOIN_COLLECTOR_CARDINALITY_LIMIT",
                    cardinality_limit.to_string(),
                ),
            ],
        );
        c.metrics_url = format!("http://127.0.0.1:{port}/metrics");
        c
    }

    /// The Collector as a producer: OTLP/HTTP in, its Kafka exporter (default settings) out to
    /// `spans_topic` and `logs_topic` (`tests/collector/exporter.yaml`). `otlp_url` is the
    /// receiver's base URL.
    pub fn start_exporter(spans_topic: &str, logs_topic: &str) -> (Self, String) {
        let port = super::free_port();
        let c = Self::spawn(
            "exporter.yaml",
            &[
                ("TRACEJOIN_COLLECTOR_SPANS_TOPIC", spans_topic.to_string()),
                ("TRACEJOIN_COLLECTOR_LOGS_TOPIC", logs_topic.to_string()),
                ("TRACEJOIN_COLLECTOR_OTLP_PORT", port.to_string()),
            ],
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the Collector's OTLP receiver never listened: {}",
                c.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        (c, format!("http://127.0.0.1:{port}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
