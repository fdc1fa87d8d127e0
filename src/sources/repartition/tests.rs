//! Splitting keeps every span and log record, its resource and scope, byte for byte, and puts one
//! trace per output record; the check decides as documented; no input panics.
//!
//! Why one file over 600 lines: the split property tests share one generator of random OTLP batches.

use super::*;
use crate::decode::otlp::{wire, SpanDecoder};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest as FullLogs;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as FullTraces;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use proptest::prelude::*;
use prost::Message;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// A random batch, rendered as OTLP protobuf or JSON, spans or logs.

#[derive(Debug, Clone)]
struct Item {
    /// 0..5: a trace of the pool; 5: empty id; 6: all-zero id; 7: an 8-byte id.
    trace: u8,
    span_id: u64,
    name: u8,
    start: u64,
    dur: u32,
    route: bool,
    link: bool,
    error: bool,
}

#[derive(Debug, Clone)]
struct Scope {
    name: u8,
    version: bool,
    schema: bool,
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
struct Res {
    service: Option<u8>,
    schema: bool,
    extra: bool,
    scopes: Vec<Scope>,
}

#[derive(Debug, Clone)]
struct Batch {
    pool: Vec<[u8; 16]>,
    snake_case: bool,
    resources: Vec<Res>,
}

fn item() -> impl Strategy<Value = Item> {
    (
        0u8..8,
        any::<u64>(),
        0u8..4,
        1u64..u64::MAX / 2,
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(trace, span_id, name, start, dur, route, link, error)| Item {
                trace,
                span_id,
                name,
                start,
                dur,
                route,
                link,
                error,
            },
        )
}

fn batch() -> impl Strategy<Value = Batch> {
    let scope = (
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(item(), 0..7),
    )
        .prop_map(|(name, version, schema, items)| Scope {
            name,
            version,
            schema,
            items,
        });
    let res = (
        prop::option::of(0u8..3),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(scope, 0..4),
    )
        .prop_map(|(service, schema, extra, scopes)| Res {
            service,
            schema,
            extra,
            scopes,
        });
    (
        prop::collection::vec(prop::array::uniform16(any::<u8>()), 1..6),
        any::<bool>(),
        prop::collection::vec(res, 0..4),
    )
        .prop_map(|(pool, snake_case, resources)| Batch {
            pool,
            snake_case,
            resources,
        })
}

impl Batch {
    fn trace_bytes(&self, t: u8) -> Vec<u8> {
        match t {
            0..=4 => {
                let mut id = self.pool[t as usize % self.pool.len()];
                id[0] |= 1; // never all-zero
                id.to_vec()
            }
            5 => vec![],
            6 => vec![0; 16],
            _ => vec![7; 8],
        }
    }

    fn resource(&self, r: &Res) -> Resource {
        let mut attributes = vec![];
        if let Some(s) = r.service {
            attributes.push(kv("service.name", format!("svc{s}")));
        }
        if r.extra {
            attributes.push(kv("host.name", "node-1".into()));
        }
        Resource {
            attributes,
            dropped_attributes_count: r.extra as u32,
            ..Default::default()
        }
    }

    fn scope(&self, s: &Scope) -> InstrumentationScope {
        InstrumentationScope {
            name: format!("lib{}", s.name),
            version: if s.version {
                "1.2.3".into()
            } else {
                String::new()
            },
            attributes: vec![kv("scope.attr", "x".into())],
            dropped_attributes_count: 0,
        }
    }

    fn span(&self, i: &Item) -> Span {
        Span {
            trace_id: self.trace_bytes(i.trace),
            span_id: i.span_id.to_be_bytes().to_vec(),
            parent_span_id: if i.route { vec![3; 8] } else { vec![] },
            trace_state: if i.link { "k=v".into() } else { String::new() },
            name: format!("op{}", i.name),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: i.start,
            end_time_unix_nano: i.start + u64::from(i.dur),
            attributes: if i.route {
                vec![kv("http.route", format!("/r/{}", i.name))]
            } else {
                vec![]
            },
            links: if i.link {
                vec![span::Link {
                    trace_id: vec![9; 16],
                    span_id: vec![9; 8],
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            status: Some(Status {
                code: if i.error {
                    status::StatusCode::Error
                } else {
                    status::StatusCode::Ok
                } as i32,
                message: if i.error {
                    "boom".into()
                } else {
                    String::new()
                },
            }),
            ..Default::default()
        }
    }

    fn log(&self, i: &Item) -> LogRecord {
        LogRecord {
            time_unix_nano: i.start,
            observed_time_unix_nano: i.start + u64::from(i.dur),
            severity_number: 9 + i.error as i32 * 8,
            severity_text: if i.error {
                "ERROR".into()
            } else {
                String::new()
            },
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("line {}", i.name))),
            }),
            attributes: if i.route {
                vec![kv("http.route", format!("/r/{}", i.name))]
            } else {
                vec![]
            },
            trace_id: self.trace_bytes(i.trace),
            span_id: i.span_id.to_be_bytes().to_vec(),
            flags: i.link as u32,
            ..Default::default()
        }
    }

    fn traces(&self) -> FullTraces {
        FullTraces {
            resource_spans: self
                .resources
                .iter()
                .map(|r| ResourceSpans {
                    resource: Some(self.resource(r)),
                    schema_url: if r.schema {
                        "https://s/1".into()
                    } else {
                        String::new()
                    },
                    scope_spans: r
                        .scopes
                        .iter()
                        .map(|s| ScopeSpans {
                            scope: Some(self.scope(s)),
                            schema_url: if s.schema {
                                "https://s/2".into()
                            } else {
                                String::new()
                            },
                            spans: s.items.iter().map(|i| self.span(i)).collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn logs(&self) -> FullLogs {
        FullLogs {
            resource_logs: self
                .resources
                .iter()
                .map(|r| ResourceLogs {
                    resource: Some(self.resource(r)),
                    schema_url: if r.schema {
                        "https://s/1".into()
                    } else {
                        String::new()
                    },
                    scope_logs: r
                        .scopes
                        .iter()
                        .map(|s| ScopeLogs {
                            scope: Some(self.scope(s)),
                            schema_url: if s.schema {
                                "https://s/2".into()
                            } else {
                                String::new()
                            },
                            log_records: s.items.iter().map(|i| self.log(i)).collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// OTLP/JSON; `spans` selects the signal.
    fn json(&self, spans: bool) -> Vec<u8> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let n =
            |camel: &'static str, snake: &'static str| if self.snake_case { snake } else { camel };
        let resources: Vec<Value> = self
            .resources
            .iter()
            .map(|r| {
                let scopes: Vec<Value> = r
                    .scopes
                    .iter()
                    .map(|s| {
                        let items: Vec<Value> = s
                            .items
                            .iter()
                            .map(|i| {
                                let mut o = json!({
                                    "traceId": hex(&self.trace_bytes(i.trace)),
                                    "spanId": hex(&i.span_id.to_be_bytes()),
                                    "attributes": if i.route {
                                        json!([{"key": "http.route", "value": {"stringValue": format!("/r/{}", i.name)}}])
                                    } else { json!([]) },
                                });
                                if spans {
                                    o["name"] = json!(format!("op{}", i.name));
                                    o["kind"] = json!(2);
                                    o["startTimeUnixNano"] = json!(i.start.to_string());
                                    o["endTimeUnixNano"] = json!(i.start + u64::from(i.dur));
                                    o["status"] = json!({"code": if i.error { 2 } else { 1 }});
                                    if i.link {
                                        o["links"] = json!([{"traceId": "09".repeat(16)}]);
                                    }
                                } else {
                                    o["timeUnixNano"] = json!(i.start.to_string());
                                    o["severityNumber"] = json!(9);
                                    o["body"] = json!({"stringValue": format!("line \"{}\"", i.name)});
                                }
                                o
                            })
                            .collect();
                        let mut o = json!({"scope": {"name": format!("lib{}", s.name)}});
                        if s.schema {
                            o["schemaUrl"] = json!("https://s/2");
                        }
                        let key = if spans { "spans" } else { n("logRecords", "log_records") };
                        o[key] = Value::Array(items);
                        o
                    })
                    .collect();
                let mut o = json!({});
                if let Some(s) = r.service {
                    o["resource"] = json!({"attributes": [
                        {"key": "service.name", "value": {"stringValue": format!("svc{s}")}}
                    ]});
                }
                if r.schema {
                    o["schemaUrl"] = json!("https://s/1");
                }
                let key = if spans { n("scopeSpans", "scope_spans") } else { n("scopeLogs", "scope_logs") };
                o[key] = Value::Array(scopes);
                o
            })
            .collect();
        let key = if spans {
            n("resourceSpans", "resource_spans")
        } else {
            n("resourceLogs", "resource_logs")
        };
        serde_json::to_vec(&json!({ key: resources })).unwrap()
    }

    fn item_count(&self) -> usize {
        self.resources
            .iter()
            .flat_map(|r| &r.scopes)
            .map(|s| s.items.len())
            .sum()
    }
}

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// What a record holds, as comparable strings.

/// Every span with its resource and scope level (all their fields but the nested list).
fn span_tuples(req: &FullTraces) -> Vec<String> {
    let mut v = vec![];
    for rs in &req.resource_spans {
        let rs_rest = ResourceSpans {
            scope_spans: vec![],
            ..rs.clone()
        };
        for ss in &rs.scope_spans {
            let ss_rest = ScopeSpans {
                spans: vec![],
                ..ss.clone()
            };
            for s in &ss.spans {
                v.push(format!("{rs_rest:?}|{ss_rest:?}|{s:?}"));
            }
        }
    }
    v
}

fn log_tuples(req: &FullLogs) -> Vec<String> {
    let mut v = vec![];
    for rl in &req.resource_logs {
        let rl_rest = ResourceLogs {
            scope_logs: vec![],
            ..rl.clone()
        };
        for sl in &rl.scope_logs {
            let sl_rest = ScopeLogs {
                log_records: vec![],
                ..sl.clone()
            };
            for l in &sl.log_records {
                v.push(format!("{rl_rest:?}|{sl_rest:?}|{l:?}"));
            }
        }
    }
    v
}

/// Every leaf of an OTLP/JSON document with its resource and scope members, normalised.
fn json_tuples(doc: &[u8], names: [[&str; 2]; 3]) -> Vec<(String, Option<String>)> {
    let doc: Value = serde_json::from_slice(doc).unwrap();
    let list = |v: &Value, n: [&str; 2]| -> Vec<Value> {
        n.iter()
            .filter_map(|k| v.get(*k).and_then(Value::as_array))
            .flatten()
            .cloned()
            .collect()
    };
    let rest = |v: &Value, n: [&str; 2]| {
        let mut v = v.clone();
        for k in n {
            v.as_object_mut().unwrap().remove(k);
        }
        v.to_string()
    };
    let mut out = vec![];
    for rs in list(&doc, names[0]) {
        for ss in list(&rs, names[1]) {
            for leaf in list(&ss, names[2]) {
                let id = leaf
                    .get("traceId")
                    .and_then(Value::as_str)
                    .filter(|s| s.len() == 32 && *s != "0".repeat(32))
                    .map(str::to_owned);
                out.push((
                    format!("{}|{}|{}", rest(&rs, names[1]), rest(&ss, names[2]), leaf),
                    id,
                ));
            }
        }
    }
    out
}

const SPAN_JSON: [[&str; 2]; 3] = [
    ["resourceSpans", "resource_spans"],
    ["scopeSpans", "scope_spans"],
    ["spans", "spans"],
];
const LOG_JSON: [[&str; 2]; 3] = [
    ["resourceLogs", "resource_logs"],
    ["scopeLogs", "scope_logs"],
    ["logRecords", "log_records"],
];

fn summaries(decoder: &mut SpanDecoder, records: &[&[u8]], json: bool) -> (Vec<String>, u32) {
    let mut out = vec![];
    let mut invalid = 0;
    for r in records {
        let stats = if json {
            decoder.decode_json(r, &mut out)
        } else {
            decoder.decode_proto(r, &mut out)
        }
        .unwrap();
        invalid += stats.invalid_ids;
    }
    let mut v: Vec<String> = out.iter().map(|s| format!("{s:?}")).collect();
    v.sort();
    (v, invalid)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// One record per key, keys distinct; a single key means the input forwarded unchanged.
fn check_shape(input: &[u8], out: &[(TraceKey, Vec<u8>)], stats: SplitStats, items: usize) {
    assert_eq!(stats.items as usize, items);
    assert_eq!(stats.records as usize, out.len());
    let keys = sorted(out.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    let mut dedup = keys.clone();
    dedup.dedup();
    assert_eq!(keys, dedup, "one record per trace key");
    if out.len() == 1 {
        assert!(stats.passthrough);
        assert_eq!(out[0].1, input);
    }
    if items == 0 {
        assert!(out.is_empty());
    }
}

/// The highest span end time of a request: what the split reports for progress marks.
fn latest_end(req: &FullTraces) -> Option<i64> {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.end_time_unix_nano)
        .filter(|t| *t > 0)
        .max()
        .map(|t| t as i64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn repartition_spans_proto_keeps_every_span_and_one_trace_per_record(b in batch()) {
        let full = b.traces();
        let input = full.encode_to_vec();
        let mut out = vec![];
        let stats = split_spans_proto(&input, &mut out).unwrap();
        check_shape(&input, &out, stats, b.item_count());

        // Byte-level fidelity: every span, resource and scope, all fields.
        let mut pieces = vec![];
        for (key, rec) in &out {
            let piece = FullTraces::decode(rec.as_slice()).unwrap();
            for rs in &piece.resource_spans {
                for ss in &rs.scope_spans {
                    prop_assert!(stats.passthrough || !ss.spans.is_empty());
                    for s in &ss.spans {
                        prop_assert_eq!(crate::model::TraceId::from_slice(&s.trace_id), key.0);
                    }
                }
            }
            pieces.extend(span_tuples(&piece));
        }
        prop_assert_eq!(sorted(pieces), sorted(span_tuples(&full)));

        // And the project's decoder sees the same spans and the same invalid ones.
        let keep = ["http.route".to_string()];
        let records: Vec<&[u8]> = out.iter().map(|(_, r)| r.as_slice()).collect();
        let before = summaries(&mut SpanDecoder::new(&keep, 100), &[&input], false);
        let after = summaries(&mut SpanDecoder::new(&keep, 100), &records, false);
        prop_assert_eq!(&before, &after);
        prop_assert_eq!(stats.without_trace, before.1);
        prop_assert_eq!(stats.latest_event_nanos, latest_end(&full));
    }

    #[test]
    fn repartition_spans_json_keeps_every_span_verbatim(b in batch()) {
        let input = b.json(true);
        let mut out = vec![];
        let stats = split_spans_json(&input, &mut out).unwrap();
        check_shape(&input, &out, stats, b.item_count());
        let mut pieces = vec![];
        for (key, rec) in &out {
            for (t, id) in json_tuples(rec, SPAN_JSON) {
                prop_assert_eq!(id, key.0.map(|k| k.to_string()));
                pieces.push(t);
            }
        }
        let original: Vec<String> = json_tuples(&input, SPAN_JSON).into_iter().map(|t| t.0).collect();
        prop_assert_eq!(sorted(pieces), sorted(original));

        let keep = ["http.route".to_string()];
        let records: Vec<&[u8]> = out.iter().map(|(_, r)| r.as_slice()).collect();
        let before = summaries(&mut SpanDecoder::new(&keep, 100), &[&input], true);
        let after = summaries(&mut SpanDecoder::new(&keep, 100), &records, true);
        prop_assert_eq!(&before, &after);
        prop_assert_eq!(stats.without_trace, before.1);
        prop_assert_eq!(stats.latest_event_nanos, latest_end(&b.traces()));
    }

    #[test]
    fn repartition_logs_proto_keeps_every_record(b in batch()) {
        let full = b.logs();
        let input = full.encode_to_vec();
        let mut out = vec![];
        let stats = split_logs_proto(&input, &mut out).unwrap();
        check_shape(&input, &out, stats, b.item_count());
        let mut pieces = vec![];
        for (key, rec) in &out {
            let piece = FullLogs::decode(rec.as_slice()).unwrap();
            for rl in &piece.resource_logs {
                for sl in &rl.scope_logs {
                    for l in &sl.log_records {
                        prop_assert_eq!(crate::model::TraceId::from_slice(&l.trace_id), key.0);
                    }
                }
            }
            pieces.extend(log_tuples(&piece));
            // The project's lean decoder reads every piece.
            prop_assert!(wire::ExportLogsServiceRequest::decode(rec.as_slice()).is_ok());
        }
        prop_assert_eq!(sorted(pieces), sorted(log_tuples(&full)));
    }

    #[test]
    fn repartition_logs_json_keeps_every_record(b in batch()) {
        let input = b.json(false);
        let mut out = vec![];
        let stats = split_logs_json(&input, &mut out).unwrap();
        check_shape(&input, &out, stats, b.item_count());
        let mut pieces = vec![];
        for (key, rec) in &out {
            prop_assert!(crate::decode::otlp::json::logs_from_json(rec).is_ok());
            for (t, id) in json_tuples(rec, LOG_JSON) {
                prop_assert_eq!(id, key.0.map(|k| k.to_string()));
                pieces.push(t);
            }
        }
        let original: Vec<String> = json_tuples(&input, LOG_JSON).into_iter().map(|t| t.0).collect();
        prop_assert_eq!(sorted(pieces), sorted(original));
    }

    #[test]
    fn repartition_split_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut out = vec![];
        let _ = split_spans_proto(&bytes, &mut out);
        let _ = split_logs_proto(&bytes, &mut out);
        let _ = split_spans_json(&bytes, &mut out);
        let _ = split_logs_json(&bytes, &mut out);
    }

    /// Damaged records: no panic, and whenever the decoder accepts the original, the split does
    /// too and the pieces decode to the same spans.
    #[test]
    fn repartition_split_of_damaged_records(
        b in batch(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        for json in [false, true] {
            let mut input = if json { b.json(true) } else { b.traces().encode_to_vec() };
            if input.is_empty() {
                continue;
            }
            for (at, byte) in &edits {
                let i = at.index(input.len());
                input[i] = *byte;
            }
            if truncate {
                input.truncate(cut.index(input.len()));
            }
            let mut out = vec![];
            let split = if json {
                split_spans_json(&input, &mut out)
            } else {
                split_spans_proto(&input, &mut out)
            };
            let _ = split_logs_proto(&input, &mut vec![]);
            let _ = split_logs_json(&input, &mut vec![]);
            let keep = ["http.route".to_string()];
            let mut d = SpanDecoder::new(&keep, 100);
            let mut spans = vec![];
            let decoded = if json {
                d.decode_json(&input, &mut spans)
            } else {
                d.decode_proto(&input, &mut spans)
            };
            if !json && decoded.is_ok() {
                prop_assert!(split.is_ok(), "{:?}", split.err());
                let records: Vec<&[u8]> = out.iter().map(|(_, r)| r.as_slice()).collect();
                let before = summaries(&mut SpanDecoder::new(&keep, 100), &[&input], false);
                let after = summaries(&mut SpanDecoder::new(&keep, 100), &records, false);
                prop_assert_eq!(before, after);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written cases.

fn two_trace_batch() -> Batch {
    let it = |trace| Item {
        trace,
        span_id: 42 + trace as u64,
        name: 1,
        start: 1_000,
        dur: 5,
        route: true,
        link: true,
        error: false,
    };
    Batch {
        pool: vec![[1; 16], [3; 16]],
        snake_case: false,
        resources: vec![Res {
            service: Some(1),
            schema: true,
            extra: true,
            scopes: vec![Scope {
                name: 0,
                version: true,
                schema: true,
                items: vec![it(0), it(1), it(5), it(0)],
            }],
        }],
    }
}

#[test]
fn repartition_keys_sorted_no_trace_first_and_counted() {
    let input = two_trace_batch().traces().encode_to_vec();
    let mut out = vec![];
    let stats = split_spans_proto(&input, &mut out).unwrap();
    assert_eq!(
        stats,
        SplitStats {
            items: 4,
            records: 3,
            without_trace: 1,
            passthrough: false,
            latest_event_nanos: latest_end(&two_trace_batch().traces()),
        }
    );
    let keys: Vec<_> = out.iter().map(|(k, _)| k.kafka_key()).collect();
    assert_eq!(keys[0], None);
    assert_eq!(keys[1].unwrap(), *b"01010101010101010101010101010101");
    assert_eq!(keys[2].unwrap(), *b"03030303030303030303030303030303");
    let piece = FullTraces::decode(out[1].1.as_slice()).unwrap();
    assert_eq!(piece.resource_spans[0].scope_spans[0].spans.len(), 2);
}

#[test]
fn repartition_headers_after_spans_and_unknown_fields_are_kept() {
    // ResourceSpans { scope_spans, resource, field 99 } with the resource after the scopes and
    // an unknown field, and an unknown field 77 at the top: all copied into every piece.
    let b = two_trace_batch();
    let full = b.traces();
    let rs = &full.resource_spans[0];
    let mut rs_bytes = vec![];
    for ss in &rs.scope_spans {
        prost::encoding::message::encode(2, ss, &mut rs_bytes);
    }
    prost::encoding::message::encode(1, rs.resource.as_ref().unwrap(), &mut rs_bytes);
    prost::encoding::uint64::encode(99, &7, &mut rs_bytes);
    let mut input = vec![];
    prost::encoding::bytes::encode(1, &rs_bytes, &mut input);
    prost::encoding::string::encode(77, &"x".to_string(), &mut input);
    let mut out = vec![];
    split_spans_proto(&input, &mut out).unwrap();
    assert_eq!(out.len(), 3);
    for (_, rec) in &out {
        let piece = FullTraces::decode(rec.as_slice()).unwrap();
        assert_eq!(piece.resource_spans[0].resource, rs.resource);
        assert!(
            rec.windows(2).any(|w| w == [(99 << 3) as u8 | 0x80, 6]),
            "field 99 kept"
        );
        assert!(rec.ends_with(&[0xea, 0x04, 1, b'x']) || rec.starts_with(&[0xea, 0x04, 1, b'x']));
    }
}

#[test]
fn repartition_empty_and_single_trace_records() {
    let mut out = vec![];
    let stats = split_spans_proto(&[], &mut out).unwrap();
    assert_eq!((stats.items, out.len()), (0, 0));
    assert!(split_spans_json(b"{}", &mut out).is_err(), "as the decoder");
    let stats = split_spans_json(br#"{"resourceSpans":[]}"#, &mut out).unwrap();
    assert_eq!((stats.items, out.len()), (0, 0));
    let err = split_spans_proto(&[0x0a, 0x05, 1], &mut out).unwrap_err();
    assert_eq!(err.code(), "invalid_protobuf");
    assert_eq!(
        split_logs_json(b"[1]", &mut out).unwrap_err().code(),
        "invalid_json"
    );
}

#[test]
fn repartition_json_output_is_otlp_json_with_escaped_members() {
    let input = br#"{"resourceSpans":[{"resource":{"attributes":[]},"we\"ird":1,"scopeSpans":[{"scope":{"name":"s"},"spans":[
        {"traceId":"01010101010101010101010101010101","spanId":"0101010101010101","name":"a"},
        {"traceId":"02020202020202020202020202020202","spanId":"0202020202020202","name":"b"}]}]}]}"#;
    let mut out = vec![];
    split_spans_json(input, &mut out).unwrap();
    assert_eq!(out.len(), 2);
    let v: Value = serde_json::from_slice(&out[0].1).unwrap();
    assert_eq!(v["resourceSpans"][0]["we\"ird"], json!(1));
    assert_eq!(
        v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"],
        json!("a")
    );
}

#[test]
fn repartition_key_and_partition_match_the_murmur2_partitioner() {
    let t = crate::model::TraceId([0xab; 16]);
    let key = repartition_key(Some(&t)).unwrap();
    assert_eq!(&key, t.to_hex().as_bytes());
    assert_eq!(repartition_key(None), None);
    for n in [1, 3, 12] {
        assert_eq!(
            Some(partition_for(&key, n)),
            Partitioner::Murmur2.partition(&key, n)
        );
    }
    assert_eq!(partition_for(&key, 0), 0);
}

#[test]
fn a_64_bit_id_lands_on_the_internal_partition_of_its_128_bit_trace() {
    let full = crate::model::TraceId([
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ]);
    let mut short = [0u8; 16];
    short[8..].copy_from_slice(&full.0[8..]);
    let short = crate::model::TraceId(short);
    let (a, b) = (
        repartition_key(Some(&full)).unwrap(),
        repartition_key(Some(&short)).unwrap(),
    );
    assert_ne!(
        a, b,
        "the keys differ (the output is keyed by the id as written)"
    );
    let mut spread = std::collections::HashSet::new();
    for n in [2, 3, 12, 64] {
        assert_eq!(
            internal_partition(&a, n),
            internal_partition(&b, n),
            "{n} partitions"
        );
    }
    // Placement by the low half still spreads traces over the partitions.
    for i in 0..64u8 {
        let mut t = [0u8; 16];
        t[15] = i;
        t[0] = 1;
        spread.insert(internal_partition(
            &repartition_key(Some(&crate::model::TraceId(t))).unwrap(),
            12,
        ));
    }
    assert!(spread.len() > 8, "{spread:?}");
}

// ---------------------------------------------------------------------------------------------
// The co-partitioning check.

fn tid(i: u8) -> crate::model::TraceId {
    crate::model::TraceId([i; 16])
}

/// Feeds `n` records of `topic`, keyed and placed by `scheme` (None: unkeyed).
fn feed(
    c: &mut CoPartitionCheck,
    topic: &str,
    parts: i32,
    scheme: Option<(Partitioner, bool)>,
    n: u8,
) -> Vec<Observation> {
    (1..=n)
        .map(|i| {
            let t = tid(i);
            let (key, p): (Option<Vec<u8>>, i32) = match scheme {
                None => (None, i32::from(i) % parts),
                Some((part, upper)) => {
                    let mut k = t.to_hex().as_bytes().to_vec();
                    if upper {
                        k.make_ascii_uppercase();
                    }
                    let p = part.partition(&k, parts).unwrap();
                    (Some(k), p)
                }
            };
            c.observe(topic, p, key.as_deref(), &[t, t], parts)
        })
        .collect()
}

fn decisions(c: &CoPartitionCheck, internal: i32) -> Vec<(String, bool, Reason)> {
    c.decide(internal)
        .into_iter()
        .map(|d| (d.topic.to_string(), d.repartition, d.reason))
        .collect()
}

#[test]
fn repartition_check_keyed_alike_needs_nothing() {
    let mut c = CoPartitionCheck::new(Partitioner::None);
    assert_eq!(decisions(&c, 6), vec![]);
    // FNV-1a on both topics (sarama): co-partitioned though not like our internal topics.
    feed(&mut c, "spans", 6, Some((Partitioner::Fnv1a, false)), 50);
    feed(&mut c, "logs", 6, Some((Partitioner::Fnv1a, false)), 50);
    assert_eq!(c.observe("logs", 3, None, &[], 6), Observation::NoTrace);
    assert_eq!(
        decisions(&c, 12),
        vec![
            ("spans".into(), false, Reason::CoPartitioned),
            ("logs".into(), false, Reason::CoPartitioned)
        ]
    );
}

#[test]
fn repartition_check_unkeyed_and_batched_topics() {
    let mut c = CoPartitionCheck::new(Partitioner::Murmur2);
    // The Collector's default exporter: unkeyed records holding several traces.
    let many = c.observe("spans", 0, None, &[tid(1), tid(2)], 6);
    assert_eq!(many, Observation::ManyTraces);
    feed(&mut c, "spans", 6, None, 10);
    // Logs keyed like our internal topics, with their partition count: they stay.
    let obs = feed(&mut c, "logs", 6, Some((Partitioner::Murmur2, false)), 20);
    assert!(obs.iter().all(|o| *o == Observation::CoPartitioned));
    let d = c.decide(6);
    assert_eq!(d[0].topic, "spans");
    assert!(d[0].repartition);
    assert_eq!(d[0].reason, Reason::Record(Observation::ManyTraces));
    assert_eq!((d[0].checked, d[0].mismatched), (11, 11));
    assert_eq!(d[1].reason, Reason::CoPartitioned);
    assert!(!d[1].repartition);
    // With another internal partition count, the logs must go through the stage too.
    assert_eq!(
        decisions(&c, 12)[1],
        ("logs".into(), true, Reason::SchemesDiffer)
    );
}

#[test]
fn repartition_check_keys_that_are_not_trace_ids_or_misplaced() {
    let mut c = CoPartitionCheck::new(Partitioner::Murmur2);
    let t = tid(5);
    assert_eq!(
        c.observe("logs", 0, Some(b"pod-7"), &[t], 4),
        Observation::KeyNotTraceId
    );
    let key = t.to_hex();
    let right = Partitioner::Murmur2.partition(key.as_bytes(), 4).unwrap();
    assert_eq!(
        c.observe("spans", (right + 1) % 4, Some(key.as_bytes()), &[t], 4),
        Observation::KeyElsewhere
    );
    // The 16 raw bytes are an accepted form of the trace id.
    let raw = Partitioner::Murmur2.partition(&t.0, 4).unwrap();
    assert_eq!(
        c.observe("spans", raw, Some(&t.0), &[t], 4),
        Observation::CoPartitioned
    );
    assert_eq!(
        c.observe("spans", 0, Some(b""), &[t], 4),
        Observation::KeyNotTraceId
    );
}

#[test]
fn repartition_check_topics_that_disagree() {
    // Each topic keyed by trace id, but with different partitioners: neither is placed like the
    // internal topics (murmur2 lowercase) → both go through the stage.
    let mut c = CoPartitionCheck::new(Partitioner::None);
    feed(&mut c, "spans", 8, Some((Partitioner::Crc32, false)), 60);
    feed(&mut c, "logs", 8, Some((Partitioner::Fnv1a, false)), 60);
    let d = decisions(&c, 8);
    assert!(
        d.iter()
            .all(|(_, r, why)| *r && *why == Reason::SchemesDiffer),
        "{d:?}"
    );

    // Same partitioner, uppercase vs lowercase hex keys: hashes differ.
    let mut c = CoPartitionCheck::new(Partitioner::Murmur2);
    feed(&mut c, "spans", 8, Some((Partitioner::Murmur2, true)), 60);
    feed(&mut c, "logs", 8, Some((Partitioner::Murmur2, false)), 60);
    assert_eq!(
        decisions(&c, 8),
        vec![
            ("spans".into(), true, Reason::SchemesDiffer),
            ("logs".into(), false, Reason::CoPartitioned)
        ]
    );

    // Same scheme, different partition counts.
    let mut c = CoPartitionCheck::new(Partitioner::Murmur2);
    feed(&mut c, "spans", 12, Some((Partitioner::Murmur2, false)), 60);
    feed(&mut c, "logs", 6, Some((Partitioner::Murmur2, false)), 60);
    assert_eq!(
        decisions(&c, 12),
        vec![
            ("spans".into(), false, Reason::CoPartitioned),
            ("logs".into(), true, Reason::PartitionCountsDiffer)
        ]
    );

    // One topic mixing partitioners (two producers): each record fits some scheme, not one.
    let mut c = CoPartitionCheck::new(Partitioner::None);
    feed(&mut c, "spans", 16, Some((Partitioner::Crc32, false)), 60);
    feed(&mut c, "spans", 16, Some((Partitioner::Murmur2, false)), 60);
    feed(&mut c, "logs", 16, Some((Partitioner::Murmur2, false)), 60);
    assert_eq!(
        decisions(&c, 16)[0],
        ("spans".into(), true, Reason::MixedSchemes)
    );
}

#[test]
fn repartition_policy_parses() {
    let p: RepartitionPolicy = serde_yaml::from_str("never").unwrap();
    assert_eq!(p, RepartitionPolicy::Never);
    assert_eq!(RepartitionPolicy::default(), RepartitionPolicy::Auto);
}
