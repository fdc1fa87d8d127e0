//! A fleet of tracejoin processes of one group, each on its own metrics port, scraped as
//! Prometheus would: for the tests that crash, stop and add members and then count what the
//! fleet's metrics say.

use super::exposition::{parse, Sample};
use super::{free_port, Process};
use std::time::{Duration, Instant};

/// One member: its process (`None` once stopped) and what its last scrape showed.
pub struct Instance {
    pub process: Option<Process>,
    pub name: String,
    metrics: String,
    log: std::path::PathBuf,
    /// The samples of the last successful scrape.
    pub last: Vec<Sample>,
}

impl Instance {
    /// Starts the binary on `base` (a config whose metrics listen on `127.0.0.1:0`) with a port
    /// of its own.
    pub fn spawn(dir: &std::path::Path, base: &std::path::Path, name: &str) -> Instance {
        let port = free_port();
        let yaml = std::fs::read_to_string(base).unwrap().replace(
            "listen: \"127.0.0.1:0\"",
            &format!("listen: \"127.0.0.1:{port}\""),
        );
        assert!(yaml.contains(&port.to_string()), "metrics port set");
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, yaml).unwrap();
        let process = Process::spawn(&config, name);
        Instance {
            log: process.log.clone(),
            process: Some(process),
            name: name.to_string(),
            metrics: format!("http://127.0.0.1:{port}/metrics"),
            last: Vec::new(),
        }
    }

    /// Whether the process still runs (was not crashed or stopped by the test).
    pub fn live(&self) -> bool {
        self.process.is_some()
    }

    /// What the instance logged (before it was stopped, too).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Scrapes the instance; false if it did not answer (the last samples stay).
    pub async fn scrape(&mut self) -> bool {
        let Ok(resp) = reqwest::get(&self.metrics).await else {
            return false;
        };
        let Ok(text) = resp.text().await else {
            return false;
        };
        self.last = parse(&text);
        true
    }

    /// The sum of metric `name`'s samples in the last scrape.
    pub fn sum(&self, name: &str) -> u64 {
        self.last
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value as u64)
            .sum()
    }

    /// kill -9.
    pub fn crash(&mut self) {
        self.process.take().expect("running").crash();
    }

    /// SIGTERM; panics unless it exits 0 within `within`.
    pub async fn stop(&mut self, within: Duration) {
        let p = self.process.take().expect("running");
        let status = tokio::task::spawn_blocking(move || p.terminate(within))
            .await
            .unwrap();
        assert!(status.success(), "{} stopped with {status}", self.name);
    }
}

/// Scrapes the live members until `measure` of the fleet has not moved for `quiet` (and each
/// of them answered), or panics after 90 s. Returns the settled value.
pub async fn settle<T: PartialEq + Clone + std::fmt::Debug>(
    fleet: &mut [Instance],
    measure: impl Fn(&[Instance]) -> T,
    quiet: Duration,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last: Option<T> = None;
    let mut since = Instant::now();
    loop {
        let mut all_up = true;
        for i in fleet.iter_mut().filter(|i| i.live()) {
            all_up &= i.scrape().await;
        }
        let now = measure(fleet);
        if last.as_ref() != Some(&now) || !all_up {
            last = Some(now.clone());
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet's counts never settled: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
