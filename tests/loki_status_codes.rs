//! The Loki client's status-code behaviour against a scripted local HTTP/1.1 server: 400 and other
//! 4xx are rejected at once with the server's text, 429 is retried after `Retry-After`, 5xx and
//! connection errors are retried with backoff. (Wire compatibility is proven against a real
//! server in `loki_victorialogs.rs`; this server only answers status codes.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracejoin::model::*;
use tracejoin::sinks::loki::*;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A server that answers the scripted responses in order (the last one repeats).
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn serve(script: Vec<&'static str>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let Some(req) = read_request(&mut sock).await else {
                continue;
            };
            log.lock().unwrap().push(req);
            let resp = script[n.min(script.len() - 1)];
            n += 1;
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    Server { url, seen }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        at: Instant::now(),
        request_line,
        headers,
        body,
    })
}

const NO_CONTENT: &str = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
const TOO_OLD: &str = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 107\r\nConnection: close\r\n\r\nentry for stream '{service=\"checkout\"}' has timestamp too old: 2001-01-01T00:00:00Z, oldest acceptable ts\n";
const UNAUTHORIZED: &str =
    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\nno org id\r\n\r\n";
const RATE_LIMITED: &str = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 29\r\nConnection: close\r\n\r\ningestion rate limit exceeded";
const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\nConnection: close\r\n\r\nunavailable";

fn joined(offset: i64) -> JoinedLog {
    JoinedLog {
        log: LogEvent {
            timestamp_unix_nanos: 1_700_000_000_000_000_000 + offset,
            timestamp_source: TimestampSource::Record,
            trace_id: Some(TraceId([0x4b; 16])),
            trace_id_width: Default::default(),
            span_id: Some(SpanId([0x11; 8])),
            severity: Some("ERROR".into()),
            body: format!("payment failed #{offset}").into(),
            service: Some("checkout".into()),
            fields: LogFields::None,
            format: LogFormat::Text,
            origin: Origin {
                topic: 1,
                partition: 3,
                offset,
            },
            ack: tracejoin::sources::ack::Ack::detached(),
        },
        outcome: JoinOutcome::Unmatched,
        reason: EmitReason::WindowClosed,
        span: None,
        trace: None,
    }
}

fn config(url: &str) -> LokiConfig {
    let mut c = LokiConfig {
        endpoint: url.into(),
        ..LokiConfig::default()
    };
    c.retry.initial_backoff = Duration::from_millis(100);
    c.retry.max_backoff = Duration::from_millis(400);
    c.request_timeout = Duration::from_secs(5);
    c
}

fn batch_of(sink: &mut LokiSink, n: i64) -> LokiBatch {
    for i in 0..n {
        assert!(sink.add(&joined(i)).unwrap().is_none());
    }
    sink.take_due(Instant::now(), true).unwrap()
}

#[tokio::test]
async fn bad_request_is_rejected_with_the_server_text_and_not_retried() {
    let server = serve(vec![TOO_OLD, NO_CONTENT]).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "pw-one\n").unwrap();
    let mut cfg = config(&server.url);
    cfg.tenant = Some(TenantConfig {
        id: Some("team-a".into()),
        ..TenantConfig::default()
    });
    cfg.auth = Some(AuthConfig::Basic {
        user: "12345".into(),
        password: SecretSource::File(pw),
    });
    let mut sink = LokiSink::new(cfg).unwrap();
    let client = sink.client();

    let outcome = client.send(batch_of(&mut sink, 3)).await;
    let BatchOutcome::Rejected {
        origins,
        status,
        reason,
        payload,
        cause,
        stats,
    } = outcome
    else {
        panic!("a 400 must be rejected: {outcome:?}")
    };
    assert_eq!(status, 400);
    assert_eq!(cause, RejectCause::BadRequest);
    assert!(
        reason.starts_with("entry for stream '{service=\"checkout\"}' has timestamp too old"),
        "{reason}"
    );
    let mut offsets: Vec<i64> = origins.iter().map(|o| o.offset).collect();
    offsets.sort();
    assert_eq!(offsets, vec![0, 1, 2]);
    assert_eq!(stats.attempts, 1);
    let lines: Vec<serde_json::Value> = payload
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "one dead-letter line per entry");
    assert_eq!(lines[0]["tenant"], "team-a");
    assert_eq!(lines[0]["labels"]["service"], "checkout");
    assert_eq!(lines[0]["line"], "payment failed #0");
    assert_eq!(lines[0]["origin"]["partition"], 3);

    // Not retried: one request, and it carried the protocol's headers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "a 400 is never retried");
    let r = &seen[0];
    assert_eq!(r.request_line, "POST /loki/api/v1/push HTTP/1.1");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("x-scope-orgid"), Some("team-a"));
    assert_eq!(r.header("authorization"), Some("Basic MTIzNDU6cHctb25l"));
    assert!(r.header("user-agent").unwrap().starts_with("tracejoin/"));
    let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
    assert!(
        raw.windows(12).any(|w| w == b"service=\"che"),
        "the body is a snappy-compressed PushRequest"
    );

    let s = client.stats();
    assert_eq!(
        (
            s.requests,
            s.batches_rejected_bad_request,
            s.entries_rejected
        ),
        (1, 1, 3)
    );
    assert_eq!((s.batches_in_flight, s.batches_failing), (0, 0));
}

#[tokio::test]
async fn other_client_errors_are_rejected_too_and_file_secrets_rotate() {
    let server = serve(vec![NO_CONTENT, UNAUTHORIZED, NO_CONTENT]).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "pw-one").unwrap();
    let mut cfg = config(&server.url);
    cfg.auth = Some(AuthConfig::Basic {
        user: "12345".into(),
        password: SecretSource::File(pw.clone()),
    });
    let mut sink = LokiSink::new(cfg).unwrap();
    let client = sink.client();
    assert!(matches!(
        client.send(batch_of(&mut sink, 1)).await,
        BatchOutcome::Delivered { .. }
    ));
    std::fs::write(&pw, "pw-two").unwrap();
    let outcome = client.send(batch_of(&mut sink, 2)).await;
    assert!(
        matches!(&outcome, BatchOutcome::Rejected { status: 401, cause: RejectCause::ClientError, reason, .. } if reason == "no org id"),
        "{outcome:?}"
    );
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("authorization"),
        Some("Basic MTIzNDU6cHctb25l")
    );
    assert_eq!(
        seen[1].header("authorization"),
        Some("Basic MTIzNDU6cHctdHdv"),
        "re-read after rotation"
    );
}

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let server = serve(vec![RATE_LIMITED, NO_CONTENT]).await;
    let mut sink = LokiSink::new(config(&server.url)).unwrap();
    let client = sink.client();
    let t0 = Instant::now();
    let outcome = client.send(batch_of(&mut sink, 5)).await;
    let BatchOutcome::Delivered {
        origins,
        entries,
        bytes,
        stats,
    } = outcome
    else {
        panic!("a 429 is retried until delivered: {outcome:?}")
    };
    assert_eq!((origins.len(), entries), (5, 5));
    assert!(bytes > 0);
    assert_eq!((stats.attempts, stats.retries_rate_limited), (2, 1));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    // Retry-After: 2 (the backoff alone would have waited 50-100 ms).
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_millis(3500),
        "{gap:?}"
    );
    assert!(stats.latency >= Duration::from_millis(1900) && t0.elapsed() >= stats.latency);
    assert_eq!(seen[0].body, seen[1].body, "the same batch is sent again");
    let s = client.stats();
    assert_eq!(
        (
            s.retries_rate_limited,
            s.batches_delivered,
            s.entries_delivered
        ),
        (1, 1, 5)
    );
    assert!(s.last_error.unwrap().contains("429"));
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_delivered() {
    let server = serve(vec![UNAVAILABLE, UNAVAILABLE, NO_CONTENT]).await;
    let mut sink = LokiSink::new(config(&server.url)).unwrap();
    let client = sink.client();
    let outcome = client.send(batch_of(&mut sink, 2)).await;
    let BatchOutcome::Delivered { stats, .. } = &outcome else {
        panic!("503 then 204 is delivered: {outcome:?}")
    };
    assert_eq!((stats.attempts, stats.retries_server_error), (3, 2));
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    // Backoff 100 ms then 200 ms, each jittered into [d/2, d].
    let g1 = seen[1].at - seen[0].at;
    let g2 = seen[2].at - seen[1].at;
    assert!(
        g1 >= Duration::from_millis(50) && g1 < Duration::from_millis(600),
        "{g1:?}"
    );
    assert!(
        g2 >= Duration::from_millis(100) && g2 < Duration::from_millis(800),
        "{g2:?}"
    );
}

#[tokio::test]
async fn max_attempts_gives_up_with_the_last_status() {
    let server = serve(vec![UNAVAILABLE]).await;
    let mut cfg = config(&server.url);
    cfg.retry.max_attempts = Some(3);
    let mut sink = LokiSink::new(cfg).unwrap();
    let outcome = sink.client().send(batch_of(&mut sink, 1)).await;
    assert!(
        matches!(&outcome, BatchOutcome::Rejected { status: 503, cause: RejectCause::RetriesExhausted, reason, stats, .. }
            if reason.contains("unavailable") && stats.attempts == 3),
        "{outcome:?}"
    );
    assert_eq!(server.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn connection_errors_are_retried_until_the_server_comes_up() {
    // Find a free port, leave it closed for a second, then serve on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut sink = LokiSink::new(config(&url)).unwrap();
    let client = sink.client();
    let batch = batch_of(&mut sink, 4);
    let send = tokio::spawn(async move { client.send(batch).await });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (mut sock, _) = listener.accept().await.unwrap();
    let req = read_request(&mut sock).await.unwrap();
    sock.write_all(NO_CONTENT.as_bytes()).await.unwrap();
    let outcome = send.await.unwrap();
    let BatchOutcome::Delivered { stats, origins, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(stats.retries_connection >= 2, "{stats:?}");
    assert_eq!(origins.len(), 4);
    assert!(!req.body.is_empty());
}

#[tokio::test]
async fn dead_letter_oversize_policy_keeps_the_line_out_of_the_request() {
    let server = serve(vec![NO_CONTENT]).await;
    let mut cfg = config(&server.url);
    cfg.max_line_bytes = tracejoin::config::ByteSize(64);
    cfg.oversize = OversizePolicy::DeadLetter;
    let mut sink = LokiSink::new(cfg).unwrap();
    let mut big = joined(7);
    big.log.body = "z".repeat(65).into();
    let refused = sink.add(&big).unwrap_err();
    assert_eq!(refused.origin.offset, 7);
    sink.add(&joined(8)).unwrap();
    let outcome = sink
        .client()
        .send(sink.take_due(Instant::now(), true).unwrap())
        .await;
    assert_eq!(
        outcome
            .origins()
            .iter()
            .map(|o| o.offset)
            .collect::<Vec<_>>(),
        vec![8]
    );
    let seen = server.seen.lock().unwrap().clone();
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&seen[0].body)
        .unwrap();
    assert!(!raw.windows(65).any(|w| w == "z".repeat(65).as_bytes()));
}
