use super::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest as FullLogsRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as FullRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn full_request() -> FullRequest {
    let span = |id: u8, parent: u8, name: &str, kind: span::SpanKind, err: bool| Span {
        trace_id: vec![7; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 5_000,
        attributes: vec![
            kv(
                "http.route",
                any_value::Value::StringValue("/cart/{id}".into()),
            ),
            kv(
                "http.response.status_code",
                any_value::Value::IntValue(if err { 503 } else { 200 }),
            ),
            kv("ignored", any_value::Value::BoolValue(true)),
        ],
        events: if err {
            vec![span::Event {
                name: "exception".into(),
                attributes: vec![kv(
                    "exception.type",
                    any_value::Value::StringValue("TimeoutError".into()),
                )],
                ..Default::default()
            }]
        } else {
            vec![]
        },
        status: Some(Status {
            code: if err {
                status::StatusCode::Error
            } else {
                status::StatusCode::Ok
            } as i32,
            message: if err {
                "upstream timeout".into()
            } else {
                String::new()
            },
        }),
        links: vec![span::Link {
            trace_id: vec![9; 16],
            span_id: vec![9; 8],
            ..Default::default()
        }],
        ..Default::default()
    };
    FullRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("checkout".into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(1, 0, "POST /cart", span::SpanKind::Server, true),
                    span(2, 1, "SELECT", span::SpanKind::Client, false),
                    Span {
                        trace_id: vec![0; 16],
                        span_id: vec![3; 8],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn keep() -> Vec<String> {
    vec!["http.route".into(), "http.response.status_code".into()]
}

#[test]
fn lean_decode_matches_opentelemetry_proto() {
    let full = full_request();
    let bytes = Bytes::from(full.encode_to_vec());
    let mut out = Vec::new();
    let stats = SpanDecoder::new(&keep(), 100)
        .decode_proto(bytes, &mut out)
        .unwrap();
    assert_eq!(
        stats.invalid_ids, 1,
        "the all-zero trace id is skipped and counted"
    );
    assert_eq!(out.len(), 2);
    let (server, client) = (&out[0], &out[1]);
    let src = &full.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(server.trace_id.0.as_slice(), src.trace_id.as_slice());
    assert_eq!(server.span_id.0.as_slice(), src.span_id.as_slice());
    assert_eq!(server.parent_span_id, None);
    assert_eq!(&*server.service, "checkout");
    assert_eq!(&*server.name, "POST /cart");
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(server.status, StatusCode::Error);
    assert_eq!(server.status_message.as_deref(), Some("upstream timeout"));
    assert_eq!(server.exception_type.as_deref(), Some("TimeoutError"));
    assert_eq!(server.duration_nanos(), 4_000);
    assert_eq!(
        server.attribute("http.route"),
        Some(&AttrValue::Str("/cart/{id}".into()))
    );
    assert_eq!(
        server.attribute("http.response.status_code"),
        Some(&AttrValue::Int(503))
    );
    assert_eq!(server.attribute("ignored"), None);
    assert_eq!(client.parent_span_id.unwrap().0, [1; 8]);
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.status, StatusCode::Ok);
    assert!(
        Arc::ptr_eq(&server.service, &client.service),
        "service names are interned"
    );
}

#[test]
fn json_decode_matches_proto_decode() {
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
      "scopeSpans":[{"scope":{"name":"x"},"spans":[
        {"traceId":"07070707070707070707070707070707","spanId":"0101010101010101","parentSpanId":"","name":"POST /cart",
         "kind":2,"startTimeUnixNano":"1000","endTimeUnixNano":5000,
         "attributes":[{"key":"http.route","value":{"stringValue":"/cart/{id}"}},{"key":"http.response.status_code","value":{"intValue":"503"}},{"key":"ignored","value":{"boolValue":true}}],
         "events":[{"name":"exception","timeUnixNano":"2000","attributes":[{"key":"exception.type","value":{"stringValue":"TimeoutError"}}]}],
         "links":[{"traceId":"09090909090909090909090909090909","spanId":"0909090909090909"}],
         "status":{"code":"STATUS_CODE_ERROR","message":"upstream timeout"}},
        {"trace_id":"07070707070707070707070707070707","span_id":"0202020202020202","parent_span_id":"0101010101010101","name":"SELECT",
         "kind":"SPAN_KIND_CLIENT","start_time_unix_nano":1000,"end_time_unix_nano":"5000",
         "attributes":[{"key":"http.route","value":{"stringValue":"/cart/{id}"}},{"key":"http.response.status_code","value":{"intValue":200}}],
         "status":{"code":1}}]}]}]}"#;
    let mut from_json = Vec::new();
    SpanDecoder::new(&keep(), 100)
        .decode_json(json.as_bytes(), &mut from_json)
        .unwrap();
    let mut from_proto = Vec::new();
    SpanDecoder::new(&keep(), 100)
        .decode_proto(Bytes::from(full_request().encode_to_vec()), &mut from_proto)
        .unwrap();
    assert_eq!(from_json, from_proto);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut d = SpanDecoder::new(&keep(), 100);
    let mut out = Vec::new();
    for bad in [
        &b"\x0a\xff\xff\xff\xff\x0f"[..],
        b"\x0a\x05\x12\x03\x0a",
        b"{\"resourceSpans\": 3}",
        b"\xde\xad\xbe\xef",
    ] {
        let r = if bad[0] == b'{' {
            d.decode_json(bad, &mut out)
        } else {
            d.decode_proto(Bytes::copy_from_slice(bad), &mut out)
        };
        assert!(r.is_err(), "{bad:?}");
    }
    assert!(out.is_empty());
}

#[test]
fn otlp_logs_carry_ids_severity_and_service() {
    let req = FullLogsRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue("payments".into()),
                )],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 0,
                        observed_time_unix_nano: 77,
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("card declined".into())),
                        }),
                        attributes: vec![kv(
                            "code.function",
                            any_value::Value::StringValue("charge".into()),
                        )],
                        trace_id: vec![7; 16],
                        span_id: vec![1; 8],
                        ..Default::default()
                    },
                    LogRecord {
                        severity_text: "INFO".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let wire = wire::ExportLogsServiceRequest::decode(Bytes::from(req.encode_to_vec())).unwrap();
    let mut out = Vec::new();
    let origin = Origin {
        topic: 1,
        partition: 2,
        offset: 3,
    };
    otlp_logs(
        &wire,
        LogFormat::OtlpProto,
        origin,
        99,
        &mut Interner::new(10),
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].trace_id.unwrap().0, [7; 16]);
    assert_eq!(out[0].span_id.unwrap().0, [1; 8]);
    assert_eq!(out[0].severity.as_deref(), Some("ERROR"));
    assert_eq!(&*out[0].body, "card declined");
    assert_eq!(out[0].timestamp_unix_nanos, 77);
    assert_eq!(out[0].service.as_deref(), Some("payments"));
    assert!(matches!(&out[0].fields, LogFields::Attributes(a) if a.len() == 1));
    assert_eq!(out[1].trace_id, None);
    assert_eq!(out[1].timestamp_unix_nanos, 99);
    assert_eq!(out[1].timestamp_source, TimestampSource::Kafka);
    assert_eq!(out[1].origin, origin);
}
