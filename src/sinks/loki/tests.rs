// Why one file over 600 lines: the Loki unit tests share one set of joined-log fixtures.
use super::config::is_label_name;
use super::service::parse_retry_after;
use super::sink::{log_field, normalize_level, truncate_line};
use super::*;
use crate::config::ByteSize;
use crate::model::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TS: i64 = 1_700_000_000_123_456_789;

fn span(service: &str, name: &str) -> SpanSummary {
    SpanSummary {
        trace_id: TraceId([0x4b; 16]),
        span_id: SpanId([0x11; 8]),
        parent_span_id: Some(SpanId([0x22; 8])),
        service: service.into(),
        name: name.into(),
        kind: SpanKind::Server,
        status: StatusCode::Error,
        status_message: Some("card declined".into()),
        start_unix_nanos: TS - 12_500_000,
        end_unix_nanos: TS,
        exception_type: Some("CardDeclined".into()),
        attributes: vec![("http.route".into(), AttrValue::Str("/charge".into()))],
    }
}

fn log(service: &str, level: &str, outcome: JoinOutcome, offset: i64) -> JoinedLog {
    let matched = matches!(
        outcome,
        JoinOutcome::MatchedSpan | JoinOutcome::MatchedTrace
    );
    JoinedLog {
        log: LogEvent {
            timestamp_unix_nanos: TS + offset,
            timestamp_source: TimestampSource::Record,
            trace_id: (outcome != JoinOutcome::NoTraceId).then_some(TraceId([0x4b; 16])),
            trace_id_width: Default::default(),
            span_id: (outcome != JoinOutcome::NoTraceId).then_some(SpanId([0x11; 8])),
            severity: Some(level.into()),
            body: format!("message {offset}").into(),
            service: Some(service.into()),
            fields: LogFields::None,
            format: LogFormat::Text,
            origin: Origin {
                topic: 1,
                partition: 0,
                offset,
            },
            ack: crate::sources::ack::Ack::detached(),
        },
        outcome,
        reason: EmitReason::SpanArrived,
        span: matched.then(|| Arc::new(span(service, "POST /charge"))),
        trace: matched.then(|| TraceContext {
            root_service: Some("frontend".into()),
            root_operation: Some("GET /checkout".into()),
            error: true,
            span_count: 4,
        }),
    }
}

fn cfg() -> LokiConfig {
    LokiConfig {
        endpoint: "http://127.0.0.1:9".into(),
        ..LokiConfig::default()
    }
}

fn sink(cfg: LokiConfig) -> LokiSink {
    LokiSink::new(cfg).expect("valid config")
}

fn invalid_key(cfg: &LokiConfig) -> String {
    match cfg.validate("outputs.loki") {
        Err(LokiConfigError::Invalid { key, .. }) => key,
        Ok(()) => panic!("config should be invalid: {cfg:?}"),
    }
}

// ---- config ----

#[test]
fn defaults_validate_once_an_endpoint_is_given() {
    assert_eq!(invalid_key(&LokiConfig::default()), "outputs.loki.endpoint");
    cfg().validate("outputs.loki").unwrap();
    let c = cfg();
    assert_eq!(c.push_url(), "http://127.0.0.1:9/loki/api/v1/push");
    assert_eq!(c.batch.max_bytes, ByteSize(1 << 20));
    assert_eq!(c.batch.max_entries, 5000);
    assert_eq!(c.batch.max_wait, Duration::from_secs(1));
    assert_eq!(c.retry.initial_backoff, Duration::from_millis(250));
    assert_eq!(c.retry.max_backoff, Duration::from_secs(30));
    assert_eq!(c.retry.max_attempts, None);
}

#[test]
fn label_errors_name_the_key() {
    let mut c = cfg();
    c.labels.push(LabelSource {
        name: "env".into(),
        value: LabelValue::Static("prod".into()),
    });
    c.labels.push(LabelSource {
        name: "bad-name".into(),
        value: LabelValue::Static("x".into()),
    });
    assert_eq!(invalid_key(&c), "outputs.loki.labels[4].name");

    let mut c = cfg();
    c.labels.push(LabelSource::from(LabelFrom::Service));
    let err = c.validate("outputs.loki").unwrap_err().to_string();
    assert!(err.contains("outputs.loki.labels[3].name"), "{err}");
    assert!(err.contains("duplicate of labels[0]"), "{err}");

    let mut c = cfg();
    c.labels[1].name = "__level".into();
    assert_eq!(invalid_key(&c), "outputs.loki.labels[1].name");

    let mut c = cfg();
    c.labels.push(LabelSource {
        name: "env".into(),
        value: LabelValue::Static(String::new()),
    });
    assert_eq!(invalid_key(&c), "outputs.loki.labels[3].value");

    let mut c = cfg();
    c.labels.push(LabelSource {
        name: "env".into(),
        value: LabelValue::Static("x".repeat(2049)),
    });
    assert_eq!(invalid_key(&c), "outputs.loki.labels[3].value");

    let mut c = cfg();
    c.labels = (0..16)
        .map(|i| LabelSource {
            name: format!("l{i}"),
            value: LabelValue::Static("v".into()),
        })
        .collect();
    let err = c.validate("outputs.loki").unwrap_err().to_string();
    assert!(
        err.contains("`outputs.loki.labels`") && err.contains("at most 15"),
        "{err}"
    );
    c.labels.pop();
    c.validate("outputs.loki").unwrap();

    let mut c = cfg();
    c.labels.clear();
    assert_eq!(invalid_key(&c), "outputs.loki.labels");

    assert!(is_label_name("_a9") && is_label_name("service_name"));
    assert!(!is_label_name("9a") && !is_label_name("a.b") && !is_label_name(""));
}

#[test]
fn other_errors_name_the_key() {
    type Edit = Box<dyn Fn(&mut LokiConfig)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| c.endpoint = "127.0.0.1:3100".into()),
            "outputs.loki.endpoint",
        ),
        (
            Box::new(|c| c.path = "loki/api/v1/push".into()),
            "outputs.loki.path",
        ),
        (
            Box::new(|c| c.batch.max_entries = 0),
            "outputs.loki.batch.max_entries",
        ),
        (
            Box::new(|c| c.max_line_bytes = ByteSize(2 << 20)),
            "outputs.loki.max_line_bytes",
        ),
        (
            Box::new(|c| c.retry.max_attempts = Some(0)),
            "outputs.loki.retry.max_attempts",
        ),
        (
            Box::new(|c| c.retry.max_backoff = Duration::from_millis(1)),
            "outputs.loki.retry.max_backoff",
        ),
        (
            Box::new(|c| c.structured_metadata.push(MetadataField::TraceId)),
            "outputs.loki.structured_metadata[10]",
        ),
        (
            Box::new(|c| {
                c.tenant = Some(TenantConfig {
                    field: Some("tenant".into()),
                    ..TenantConfig::default()
                })
            }),
            "outputs.loki.tenant.default",
        ),
        (
            Box::new(|c| {
                c.tenant = Some(TenantConfig {
                    id: Some("team a".into()),
                    ..TenantConfig::default()
                })
            }),
            "outputs.loki.tenant.id",
        ),
        (
            Box::new(|c| {
                c.auth = Some(AuthConfig::Bearer {
                    token: SecretSource::Env("TRACEJOIN_TEST_UNSET_TOKEN_VAR".into()),
                })
            }),
            "outputs.loki.auth.bearer.token.env",
        ),
        (
            Box::new(|c| {
                c.auth = Some(AuthConfig::Basic {
                    user: "u".into(),
                    password: SecretSource::File("/nonexistent/tracejoin/password".into()),
                })
            }),
            "outputs.loki.auth.basic.password.file",
        ),
    ];
    for (i, (edit, key)) in cases.iter().enumerate() {
        let mut c = cfg();
        edit(&mut c);
        assert_eq!(invalid_key(&c), *key, "case {i}");
    }
}

#[test]
fn yaml_forms_parse_and_unknown_keys_are_errors() {
    let yaml = r#"
endpoint: https://logs.example.com
path: /insert/loki/api/v1/push
encoding: json
labels:
  - service
  - { name: service_name, from: service }
  - { name: env, value: prod }
  - { name: namespace, field: k8s_namespace }
structured_metadata: [trace_id, span_attributes]
tenant: { field: tenant, default: shared }
auth: { bearer: { token: { file: /run/secrets/loki } } }
batch: { max_bytes: 512KiB, max_entries: 100, max_wait: 250ms }
max_line_bytes: 64KiB
oversize: dead_letter
retry: { initial_backoff: 100ms, max_backoff: 5s, max_attempts: 7 }
request_timeout: 10s
"#;
    let c: LokiConfig = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(c.encoding, LokiEncoding::Json);
    assert_eq!(c.labels[0], LabelSource::from(LabelFrom::Service));
    assert_eq!(c.labels[1].name, "service_name");
    assert_eq!(c.labels[1].value, LabelValue::From(LabelFrom::Service));
    assert_eq!(c.labels[2].value, LabelValue::Static("prod".into()));
    assert_eq!(c.labels[3].value, LabelValue::Field("k8s_namespace".into()));
    assert_eq!(c.batch.max_bytes, ByteSize(512 << 10));
    assert_eq!(c.batch.max_wait, Duration::from_millis(250));
    assert_eq!(c.oversize, OversizePolicy::DeadLetter);
    assert_eq!(c.retry.max_attempts, Some(7));
    assert_eq!(
        c.auth,
        Some(AuthConfig::Bearer {
            token: SecretSource::File("/run/secrets/loki".into())
        })
    );

    for bad in [
        "endpoint: http://x\nbatchh: {}\n",
        "endpoint: http://x\nlabels: [servce]\n",
        "endpoint: http://x\nlabels: [{name: a, from: level, value: b}]\n",
        "endpoint: http://x\nlabels: [{name: a, valeu: b}]\n",
        "endpoint: http://x\nauth: {basic: {user: u, password: hunter2}}\n",
    ] {
        assert!(serde_yaml::from_str::<LokiConfig>(bad).is_err(), "{bad}");
    }
}

/// The documented example lists every key with its default: it must parse, validate, and equal
/// the defaults (plus its endpoint).
#[test]
fn shipped_example_matches_the_defaults() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/loki/loki-output.yaml");
    let c: LokiConfig = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c.validate("outputs.loki").unwrap();
    let want = LokiConfig {
        endpoint: "http://127.0.0.1:3100".into(),
        ..LokiConfig::default()
    };
    assert_eq!(c, want);
}

#[test]
fn secrets_are_never_debug_printed() {
    std::env::set_var("TRACEJOIN_TEST_LOKI_TOKEN", "s3cr3t-token-value");
    let mut c = cfg();
    c.auth = Some(AuthConfig::Bearer {
        token: SecretSource::Env("TRACEJOIN_TEST_LOKI_TOKEN".into()),
    });
    let s = sink(c);
    let dbg = format!("{s:?} {:?}", s.client());
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("LokiClient"));
}

// ---- sink: lines, labels, grouping, batching ----

#[test]
fn streams_group_per_label_set() {
    let mut s = sink(cfg());
    let logs = [
        log("checkout", "ERROR", JoinOutcome::MatchedSpan, 0),
        log("checkout", "error", JoinOutcome::MatchedSpan, 1),
        log("checkout", "INFO", JoinOutcome::MatchedSpan, 2),
        log("cart", "ERROR", JoinOutcome::MatchedSpan, 3),
        log("checkout", "E", JoinOutcome::Unmatched, 4),
        log("cart", "Error", JoinOutcome::MatchedSpan, 5),
    ];
    for l in &logs {
        assert!(s.add(l).unwrap().is_none());
    }
    let b = s.take_due(Instant::now(), true).expect("open batch");
    assert_eq!(b.entries(), 6);
    let mut got: Vec<(String, usize)> = b
        .streams
        .iter()
        .map(|st| (st.labels.clone(), st.entries.len()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                r#"{service="cart", level="error", outcome="matched_span"}"#.into(),
                2
            ),
            (
                r#"{service="checkout", level="error", outcome="matched_span"}"#.into(),
                2
            ),
            (
                r#"{service="checkout", level="error", outcome="unmatched"}"#.into(),
                1
            ),
            (
                r#"{service="checkout", level="info", outcome="matched_span"}"#.into(),
                1
            ),
        ]
    );
    let mut origins: Vec<i64> = b.origins().map(|o| o.offset).collect();
    origins.sort();
    assert_eq!(origins, vec![0, 1, 2, 3, 4, 5]);
    assert!(
        s.take_due(Instant::now(), true).is_none(),
        "the sink holds one batch"
    );
}

#[test]
fn label_values_are_never_empty_and_are_escaped() {
    let mut s = sink(cfg());
    let mut l = log("weird \"svc\"\\\n", "whatever", JoinOutcome::NoTraceId, 0);
    l.log.severity = None;
    s.add(&l).unwrap();
    let mut l2 = log("", "x", JoinOutcome::NoTraceId, 1);
    l2.log.service = None;
    s.add(&l2).unwrap();
    let b = s.take_due(Instant::now(), true).unwrap();
    let labels: Vec<&str> = b.streams.iter().map(|s| s.labels.as_str()).collect();
    assert_eq!(
        labels,
        vec![
            r#"{service="weird \"svc\"\\\n", level="unknown", outcome="no_trace_id"}"#,
            r#"{service="unknown_service", level="unknown", outcome="no_trace_id"}"#,
        ]
    );
    assert_eq!(b.streams[0].pairs[0].1, "weird \"svc\"\\\n");
}

#[test]
fn levels_fold_to_a_small_set() {
    for (raw, want) in [
        ("ERROR", "error"),
        ("err", "error"),
        ("Warning", "warn"),
        ("INFO2", "info"),
        ("notice", "info"),
        ("DEBUG", "debug"),
        ("trace", "trace"),
        ("CRIT", "critical"),
        ("panic", "fatal"),
        ("verbose-ish", "unknown"),
    ] {
        assert_eq!(normalize_level(Some(raw)), want, "{raw}");
    }
    assert_eq!(normalize_level(None), "unknown");
}

#[test]
fn batches_close_on_entries_bytes_time_and_tenant() {
    // max_entries: the entry that reaches it closes the batch.
    let mut c = cfg();
    c.batch.max_entries = 3;
    let mut s = sink(c);
    assert!(s
        .add(&log("a", "info", JoinOutcome::Unmatched, 0))
        .unwrap()
        .is_none());
    assert!(s
        .add(&log("a", "info", JoinOutcome::Unmatched, 1))
        .unwrap()
        .is_none());
    let b = s
        .add(&log("b", "info", JoinOutcome::Unmatched, 2))
        .unwrap()
        .unwrap();
    assert_eq!((b.entries(), b.streams()), (3, 2));
    assert_eq!(s.open_entries(), 0);

    // max_bytes: the entry that would go over it closes the batch before it and opens the next.
    let mut c = cfg();
    c.batch.max_bytes = ByteSize(4096);
    c.max_line_bytes = ByteSize(2048);
    let mut s = sink(c);
    let mut big = log("a", "info", JoinOutcome::Unmatched, 0);
    big.log.body = "x".repeat(1500).into();
    assert!(s.add(&big).unwrap().is_none());
    assert!(s.add(&big).unwrap().is_none());
    let b = s
        .add(&big)
        .unwrap()
        .expect("third line would exceed 4096 bytes");
    assert_eq!(b.entries(), 2);
    assert!(b.bytes() <= 4096, "{}", b.bytes());
    assert_eq!(s.open_entries(), 1);

    // max_wait.
    let t0 = Instant::now();
    assert!(s.take_due(t0, false).is_none());
    assert!(s.next_due().is_some());
    let b = s.take_due(t0 + Duration::from_secs(2), false).unwrap();
    assert_eq!(b.entries(), 1);
    assert!(s.take_due(t0 + Duration::from_secs(9), true).is_none());

    // Tenant from a field: a log of another tenant closes the open batch.
    let mut c = cfg();
    c.tenant = Some(TenantConfig {
        field: Some("tenant".into()),
        default: Some("shared".into()),
        ..TenantConfig::default()
    });
    let mut s = sink(c);
    let with_tenant = |t: Option<&str>, off| {
        let mut l = log("a", "info", JoinOutcome::Unmatched, off);
        l.log.fields = LogFields::Pairs(
            t.map(|t| vec![("tenant".into(), t.into())])
                .unwrap_or_default(),
        );
        l
    };
    assert!(s.add(&with_tenant(Some("team-a"), 0)).unwrap().is_none());
    assert!(s.add(&with_tenant(Some("team-a"), 1)).unwrap().is_none());
    let b = s.add(&with_tenant(Some("team-b"), 2)).unwrap().unwrap();
    assert_eq!((b.tenant(), b.entries()), (Some("team-a"), 2));
    let b = s.add(&with_tenant(None, 3)).unwrap().unwrap();
    assert_eq!(b.tenant(), Some("team-b"));
    let b = s.add(&with_tenant(Some("bad tenant|x"), 4)).unwrap();
    assert!(b.is_none(), "an invalid tenant falls back to the default");
    assert_eq!(
        s.take_due(Instant::now(), true).unwrap().tenant(),
        Some("shared")
    );
}

#[test]
fn long_lines_are_truncated_with_a_marker() {
    let mut c = cfg();
    c.max_line_bytes = ByteSize(100);
    let mut s = sink(c);
    let mut l = log("a", "info", JoinOutcome::Unmatched, 0);
    l.log.body = "é".repeat(200).into(); // 400 bytes, 2-byte chars
    s.add(&l).unwrap();
    let b = s.take_due(Instant::now(), true).unwrap();
    let e = &b.streams[0].entries[0];
    assert!(e.line.len() <= 100, "{}", e.line.len());
    let removed: usize = 400 - e.line.find('…').unwrap();
    assert!(
        e.line.ends_with(&format!("…[truncated {removed} bytes]")),
        "{}",
        e.line
    );
    let md: Vec<(&str, &str)> = e.metadata.iter().map(|(k, v)| (&**k, v.as_str())).collect();
    assert!(
        md.contains(&("line_truncated_bytes", &*removed.to_string())),
        "{md:?}"
    );

    let mut short = "abc".to_string();
    let mut exact = "x".repeat(64);
    assert_eq!(
        truncate_line(&mut exact, 64 - 1),
        64 - exact.find('…').unwrap()
    );
    assert!(exact.len() <= 63);
    truncate_line(&mut short, 64);
    assert!(short.starts_with("abc"));
}

#[test]
fn oversize_dead_letter_hands_the_log_back() {
    let mut c = cfg();
    c.max_line_bytes = ByteSize(64);
    c.oversize = OversizePolicy::DeadLetter;
    let mut s = sink(c);
    s.add(&log("a", "info", JoinOutcome::Unmatched, 0)).unwrap();
    let mut l = log("a", "error", JoinOutcome::MatchedSpan, 9);
    l.log.body = "y".repeat(100).into();
    let err = s.add(&l).unwrap_err();
    assert_eq!((err.origin.offset, err.line_bytes, err.limit), (9, 100, 64));
    assert_eq!(s.open_entries(), 1, "the open batch is untouched");
    let v: serde_json::Value = serde_json::from_slice(&err.payload).unwrap();
    assert_eq!(v["line"], "y".repeat(100));
    assert_eq!(v["labels"]["service"], "a");
    assert_eq!(v["labels"]["level"], "error");
    assert_eq!(v["structured_metadata"]["trace_id"], "4b".repeat(16));
    assert_eq!(v["origin"]["offset"], 9);
    assert_eq!(v["timestamp"], (TS + 9).to_string());
}

#[test]
fn original_lines_and_log_fields() {
    let mut c = cfg();
    c.structured_metadata = vec![MetadataField::LogAttributes, MetadataField::SpanAttributes];
    c.labels.push(LabelSource {
        name: "namespace".into(),
        value: LabelValue::Field("k8s.namespace".into()),
    });
    let mut s = sink(c);
    let mut l = log("a", "info", JoinOutcome::MatchedSpan, 0);
    l.log.fields = LogFields::Pairs(vec![
        ("level".into(), "info".into()),
        ("msg".into(), "hello world".into()),
        ("k8s.namespace".into(), "prod".into()),
    ]);
    s.add(&l).unwrap();
    let raw = r#"{"msg":"hi","k8s.namespace":"dev","n":{"k8s.namespace":"no"}}"#;
    let mut j = log("a", "info", JoinOutcome::MatchedSpan, 1);
    j.log.fields =
        LogFields::RawJson(serde_json::value::RawValue::from_string(raw.into()).unwrap());
    s.add(&j).unwrap();
    let b = s.take_due(Instant::now(), true).unwrap();
    let st = &b.streams[0];
    assert_eq!(
        st.labels,
        r#"{service="a", level="info", outcome="matched_span", namespace="prod"}"#
    );
    assert_eq!(
        st.entries[0].line,
        r#"level=info msg="hello world" k8s.namespace=prod"#
    );
    let md: Vec<(&str, &str)> = st.entries[0]
        .metadata
        .iter()
        .map(|(k, v)| (&**k, v.as_str()))
        .collect();
    assert_eq!(
        md,
        vec![
            ("level", "info"),
            ("msg", "hello world"),
            ("k8s_namespace", "prod"),
            ("http_route", "/charge")
        ]
    );
    assert_eq!(
        b.streams[1].labels,
        r#"{service="a", level="info", outcome="matched_span", namespace="dev"}"#
    );
    assert_eq!(b.streams[1].entries[0].line, raw);

    let f = LogFields::RawJson(
        serde_json::value::RawValue::from_string(r#"{"a":1,"b":"x\"y","c":true,"d":[1]}"#.into())
            .unwrap(),
    );
    assert_eq!(log_field(&f, "a").as_deref(), Some("1"));
    assert_eq!(log_field(&f, "b").as_deref(), Some("x\"y"));
    assert_eq!(log_field(&f, "c").as_deref(), Some("true"));
    assert_eq!(log_field(&f, "d"), None);
    assert_eq!(log_field(&f, "e"), None);
}

// ---- the exact bytes sent ----

/// A protobuf reader written from the wire format spec, independent of the prost messages in
/// `event.rs`: each field as (number, varint value or length-delimited bytes).
#[derive(Debug)]
enum Pb<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[0];
        *b = &b[1..];
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
    }
    panic!("varint too long")
}

fn fields(mut b: &[u8]) -> Vec<(u64, Pb<'_>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let v = match key & 7 {
            0 => Pb::Varint(varint(&mut b)),
            2 => {
                let n = varint(&mut b) as usize;
                let (x, rest) = b.split_at(n);
                b = rest;
                Pb::Bytes(x)
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((key >> 3, v));
    }
    out
}

fn bytes_of<'a>(f: &[(u64, Pb<'a>)], n: u64) -> Vec<&'a [u8]> {
    f.iter()
        .filter_map(|(k, v)| match (k, v) {
            (k, Pb::Bytes(b)) if *k == n => Some(*b),
            _ => None,
        })
        .collect()
}

fn varint_of(f: &[(u64, Pb<'_>)], n: u64) -> Option<u64> {
    f.iter().find_map(|(k, v)| match v {
        Pb::Varint(x) if *k == n => Some(*x),
        _ => None,
    })
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn protobuf_body_decodes_per_push_proto() {
    let mut s = sink(cfg());
    // Added out of order: the stream goes out sorted by timestamp.
    s.add(&log("checkout", "ERROR", JoinOutcome::MatchedSpan, 5))
        .unwrap();
    s.add(&log("checkout", "error", JoinOutcome::MatchedSpan, 0))
        .unwrap();
    s.add(&log("cart", "info", JoinOutcome::NoTraceId, 1))
        .unwrap();
    let batch = s.take_due(Instant::now(), true).unwrap();
    let wire = batch.into_wire();
    let (body, raw_len, content_type) = wire.encode(LokiEncoding::Protobuf);
    assert_eq!(content_type, "application/x-protobuf");
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .expect("snappy block format");
    assert_eq!(raw.len(), raw_len);

    // PushRequest { repeated StreamAdapter streams = 1; }
    let req = fields(&raw);
    assert!(req.iter().all(|(k, _)| *k == 1));
    let streams = bytes_of(&req, 1);
    assert_eq!(streams.len(), 2);

    // StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
    let s0 = fields(streams[0]);
    assert_eq!(
        text(bytes_of(&s0, 1)[0]),
        r#"{service="checkout", level="error", outcome="matched_span"}"#
    );
    assert_eq!(varint_of(&s0, 3).unwrap_or(0), 0);
    let entries = bytes_of(&s0, 2);
    assert_eq!(entries.len(), 2);

    // EntryAdapter { Timestamp timestamp = 1; string line = 2;
    //                repeated LabelPairAdapter structuredMetadata = 3; }
    let e0 = fields(entries[0]);
    let ts = fields(bytes_of(&e0, 1)[0]); // Timestamp { int64 seconds = 1; int32 nanos = 2; }
    assert_eq!(varint_of(&ts, 1), Some(1_700_000_000));
    assert_eq!(varint_of(&ts, 2), Some(123_456_789));
    assert_eq!(text(bytes_of(&e0, 2)[0]), "message 0");
    let md: Vec<(String, String)> = bytes_of(&e0, 3)
        .into_iter()
        .map(|p| {
            let f = fields(p); // LabelPairAdapter { string name = 1; string value = 2; }
            (
                text(bytes_of(&f, 1)[0]).into(),
                text(bytes_of(&f, 2)[0]).into(),
            )
        })
        .collect();
    let md: Vec<(&str, &str)> = md.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(
        md,
        vec![
            ("trace_id", "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b"),
            ("span_id", "1111111111111111"),
            ("span_name", "POST /charge"),
            ("span_kind", "SPAN_KIND_SERVER"),
            ("span_status", "STATUS_CODE_ERROR"),
            ("span_duration_ms", "12.5"),
            ("exception_type", "CardDeclined"),
            ("root_service", "frontend"),
            ("root_operation", "GET /checkout"),
            ("join_reason", "span_arrived"),
        ]
    );
    let e1 = fields(entries[1]);
    let ts1 = fields(bytes_of(&e1, 1)[0]);
    assert_eq!(varint_of(&ts1, 2), Some(123_456_794));
    assert_eq!(text(bytes_of(&e1, 2)[0]), "message 5");

    let s1 = fields(streams[1]);
    assert_eq!(
        text(bytes_of(&s1, 1)[0]),
        r#"{service="cart", level="info", outcome="no_trace_id"}"#
    );
    let e = fields(bytes_of(&s1, 2)[0]);
    let md: Vec<String> = bytes_of(&e, 3)
        .into_iter()
        .map(|p| text(bytes_of(&fields(p), 1)[0]).to_string())
        .collect();
    assert_eq!(
        md,
        vec!["join_reason"],
        "no span: only the fields with a value"
    );

    // The origins and the dead-letter form follow the sorted entries.
    let origins: Vec<i64> = wire.origins.iter().flatten().map(|o| o.offset).collect();
    assert_eq!(origins, vec![0, 5, 1]);
    let dl = wire.dead_letter_payload();
    let lines: Vec<serde_json::Value> = dl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["line"], "message 5");
    assert_eq!(lines[1]["origin"]["offset"], 5);
    assert_eq!(lines[2]["labels"]["outcome"], "no_trace_id");
}

#[test]
fn json_body_has_loki_push_shape() {
    let mut s = sink(cfg());
    s.add(&log("checkout", "error", JoinOutcome::MatchedSpan, 0))
        .unwrap();
    s.add(&log("cart", "info", JoinOutcome::NoTraceId, 1))
        .unwrap();
    let wire = s.take_due(Instant::now(), true).unwrap().into_wire();
    let (body, raw_len, ct) = wire.encode(LokiEncoding::Json);
    assert_eq!((ct, raw_len), ("application/json", body.len()));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let st = &v["streams"][0];
    assert_eq!(
        st["stream"],
        serde_json::json!({"service": "checkout", "level": "error", "outcome": "matched_span"})
    );
    assert_eq!(st["values"][0][0], TS.to_string());
    assert_eq!(st["values"][0][1], "message 0");
    assert_eq!(st["values"][0][2]["trace_id"], "4b".repeat(16));
    assert_eq!(st["values"][0][2]["span_duration_ms"], "12.5");
    let st1 = &v["streams"][1];
    assert_eq!(st1["values"][0].as_array().unwrap().len(), 3);
    assert_eq!(
        st1["values"][0][2],
        serde_json::json!({"join_reason": "span_arrived"})
    );
}

#[test]
fn retry_after_forms() {
    assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
    assert_eq!(
        parse_retry_after(" 1.5 "),
        Some(Duration::from_millis(1500))
    );
    let in_10s = chrono::Utc::now() + chrono::Duration::seconds(10);
    let http_date = in_10s.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let d = parse_retry_after(&http_date).unwrap();
    assert!(
        d > Duration::from_secs(7) && d <= Duration::from_secs(10),
        "{d:?}"
    );
    assert_eq!(
        parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon"), None);
}
