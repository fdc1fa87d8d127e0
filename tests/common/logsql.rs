//! LogsQL over HTTP, VictoriaLogs' query language: how the tests read back what the Loki sink
//! pushed (`/select/logsql/query`, one JSON object a line).

use std::time::{Duration, Instant};

/// A row as VictoriaLogs returns it.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// A LogsQL client for one server.
pub struct LogsQl {
    http: reqwest::Client,
    base: String,
}

impl LogsQl {
    pub fn new(base: &str) -> Self {
        Self::with_http(base, reqwest::Client::builder())
    }

    /// A client for an `https://` server whose certificate a private CA signed.
    pub fn with_ca(base: &str, ca_pem: &[u8]) -> Self {
        let ca = reqwest::Certificate::from_pem(ca_pem).expect("CA PEM");
        Self::with_http(
            base,
            reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca),
        )
    }

    fn with_http(base: &str, http: reqwest::ClientBuilder) -> Self {
        LogsQl {
            http: http.timeout(Duration::from_secs(20)).build().unwrap(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The rows of `q` (in tenant `account` when given), or why not (the server may be down).
    pub async fn try_query(&self, q: &str, account: Option<&str>) -> Result<Vec<Row>, String> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/select/logsql/query", self.base),
            &[("query", q), ("limit", "100000")],
        )
        .unwrap();
        let mut req = self.http.get(url);
        if let Some(a) = account {
            req = req.header("AccountID", a).header("ProjectID", "0");
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("LogsQL {q:?}: {status} {body}"));
        }
        Ok(body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect())
    }

    /// The rows of `q`; the server must answer.
    pub async fn query(&self, q: &str, account: Option<&str>) -> Vec<Row> {
        self.try_query(q, account)
            .await
            .unwrap_or_else(|e| panic!("query VictoriaLogs: {e}"))
    }

    /// `q | stats count() as n`: how many rows match (0 while the server does not answer).
    pub async fn count(&self, q: &str, account: Option<&str>) -> u64 {
        self.try_query(&format!("{q} | stats count() as n"), account)
            .await
            .ok()
            .and_then(|rows| rows.first()?.get("n")?.as_str()?.parse().ok())
            .unwrap_or(0)
    }

    /// Polls `q` until it returns `want` rows or `timeout` passes; returns the last rows.
    /// (Fresh data can show in `stats` a moment before plain queries return it.)
    pub async fn wait_rows(
        &self,
        q: &str,
        account: Option<&str>,
        want: usize,
        timeout: Duration,
    ) -> Vec<Row> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.query(q, account).await;
            if rows.len() >= want || Instant::now() >= deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls the count of `q` until it reaches `want` (VictoriaLogs makes new data visible
    /// within about a second) or `timeout` passes. Returns the last count.
    pub async fn wait_count(
        &self,
        q: &str,
        account: Option<&str>,
        want: u64,
        timeout: Duration,
    ) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.count(q, account).await;
            if n >= want || Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A row's field as a string.
pub fn field(row: &Row, k: &str) -> Option<String> {
    row.get(k).and_then(|v| v.as_str()).map(String::from)
}
