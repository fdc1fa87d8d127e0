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
        .decode_proto(&bytes, &mut out)
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
        .decode_proto(&full_request().encode_to_vec(), &mut from_proto)
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
            d.decode_proto(bad, &mut out)
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

/// The scanner against prost + `convert`, the decoder it replaced.
mod scan {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope, KeyValueList};
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;
    use prost::encoding::{encode_key, encode_varint, WireType};

    /// Duplicated on purpose: both entries must get the value. `""` matches a key-value without
    /// a key.
    fn keep() -> Vec<String> {
        ["http.route", "http.response.status_code", "http.route", ""]
            .map(String::from)
            .to_vec()
    }

    /// Both decoders on `bytes`: the same spans and stats, or both an error and no spans. Compared
    /// by `Debug`, so that a NaN attribute equals itself.
    fn same(bytes: &[u8]) -> Result<bool, TestCaseError> {
        // A small interner cap, so that its "full" path runs too.
        let (mut scanned, mut decoded) = (Vec::new(), Vec::new());
        let a = SpanDecoder::new(&keep(), 4).decode_proto(bytes, &mut scanned);
        let b = SpanDecoder::new(&keep(), 4)
            .decode_proto_via_prost(Bytes::copy_from_slice(bytes), &mut decoded);
        match (&a, &b) {
            (Ok(x), Ok(y)) => {
                prop_assert_eq!(x, y);
                prop_assert_eq!(format!("{scanned:?}"), format!("{decoded:?}"));
            }
            (Err(x), Err(_)) => {
                prop_assert!(scanned.is_empty() && decoded.is_empty());
                prop_assert_eq!(x.code(), "invalid_protobuf");
            }
            _ => prop_assert!(false, "scanner {a:?}, prost {b:?}"),
        }
        Ok(a.is_ok())
    }

    fn field(tag: u32, wire_type: WireType, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_key(tag, wire_type, &mut v);
        if wire_type == WireType::LengthDelimited {
            encode_varint(payload.len() as u64, &mut v);
        }
        v.extend_from_slice(payload);
        v
    }

    /// Fields no lean message declares, of every wire type, groups nested.
    fn unknown() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => Just(vec![]),
            1 => any::<u64>().prop_map(|n| {
                let mut v = Vec::new();
                encode_varint(n, &mut v);
                field(50, WireType::Varint, &v)
            }),
            1 => any::<u64>().prop_map(|n| field(51, WireType::SixtyFourBit, &n.to_le_bytes())),
            1 => any::<u32>().prop_map(|n| field(52, WireType::ThirtyTwoBit, &n.to_le_bytes())),
            1 => vec(any::<u8>(), 0..4).prop_map(|b| field(53, WireType::LengthDelimited, &b)),
            1 => (1u32..4).prop_map(|depth| {
                let mut v = field(9, WireType::Varint, &[1]);
                for d in 0..depth {
                    let mut g = field(54 + d, WireType::StartGroup, &v);
                    g.extend(field(54 + d, WireType::EndGroup, &[]));
                    v = g;
                }
                v
            }),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "http.route",
            "http.response.status_code",
            "service.name",
            "exception.type",
            "",
            "other",
        ])
        .prop_map(String::from)
    }

    fn text() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "a", "checkout", "TimeoutError", "/cart/{id}"])
            .prop_map(String::from)
    }

    fn value() -> impl Strategy<Value = Option<AnyValue>> {
        use any_value::Value;
        let scalar = prop_oneof![
            text().prop_map(Value::StringValue),
            any::<bool>().prop_map(Value::BoolValue),
            any::<i64>().prop_map(Value::IntValue),
            any::<f64>().prop_map(Value::DoubleValue),
            vec(any::<u8>(), 0..3).prop_map(Value::BytesValue),
        ];
        let nested = prop_oneof![
            scalar.clone(),
            vec(scalar.clone(), 0..2).prop_map(|values| Value::ArrayValue(ArrayValue {
                values: values
                    .into_iter()
                    .map(|v| AnyValue { value: Some(v) })
                    .collect(),
            })),
            (key(), scalar).prop_map(|(k, v)| Value::KvlistValue(KeyValueList {
                values: vec![kv(&k, v)],
            })),
        ];
        option::weighted(
            0.9,
            option::weighted(0.9, nested).prop_map(|value| AnyValue { value }),
        )
    }

    fn key_value() -> impl Strategy<Value = KeyValue> {
        (key(), value()).prop_map(|(key, value)| KeyValue { key, value })
    }

    /// A key-value, sometimes as two merged on the wire (last key wins, values merge), sometimes
    /// with an unknown field.
    fn key_value_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => key_value().prop_map(|kv| kv.encode_to_vec()),
            1 => (key_value(), key_value())
                .prop_map(|(a, b)| [a.encode_to_vec(), b.encode_to_vec()].concat()),
            1 => (key_value(), unknown()).prop_map(|(a, u)| [u, a.encode_to_vec()].concat()),
        ]
    }

    fn id() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => vec(any::<u8>(), 16),
            3 => vec(any::<u8>(), 8),
            1 => Just(vec![]),
            1 => Just(vec![0; 16]),
            1 => Just(vec![0; 8]),
            1 => vec(any::<u8>(), 0..20),
        ]
    }

    fn span() -> impl Strategy<Value = Span> {
        let event = (
            prop::sample::select(vec!["exception", "exception ", ""]),
            vec(key_value(), 0..3),
        )
            .prop_map(|(name, attributes)| span::Event {
                name: name.into(),
                attributes,
                time_unix_nano: 5,
                ..Default::default()
            });
        let status = option::of(
            (
                prop::sample::select(vec!["", "boom"]),
                prop_oneof![3 => 0i32..3, 1 => any::<i32>()],
            )
                .prop_map(|(m, code)| Status {
                    message: m.into(),
                    code,
                }),
        );
        (
            (id(), id(), id(), text()),
            (
                prop_oneof![0i32..7, any::<i32>()],
                any::<u64>(),
                any::<u64>(),
            ),
            (vec(key_value(), 0..4), vec(event, 0..3), status),
            (any::<u32>(), any::<u32>(), text()),
        )
            .prop_map(
                |(
                    (trace_id, span_id, parent_span_id, name),
                    (kind, start, end),
                    (attributes, events, status),
                    (flags, dropped, trace_state),
                )| Span {
                    trace_id,
                    span_id,
                    parent_span_id,
                    name,
                    kind,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes,
                    events,
                    status,
                    flags,
                    dropped_attributes_count: dropped,
                    trace_state,
                    links: vec![span::Link::default()],
                    ..Default::default()
                },
            )
    }

    /// A span, sometimes as two merged on the wire (the last id/name/kind/time wins, attributes
    /// and events append, statuses merge), with attributes of their own encoding in between.
    fn span_bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            span(),
            option::weighted(0.5, span()),
            vec(key_value_bytes(), 0..3),
            unknown(),
        )
            .prop_map(|(a, b, attrs, u)| {
                let mut v = a.encode_to_vec();
                for kv in attrs {
                    v.extend(field(9, WireType::LengthDelimited, &kv));
                }
                v.extend(u);
                if let Some(b) = b {
                    v.extend(b.encode_to_vec());
                }
                v
            })
    }

    fn scope_spans_bytes() -> impl Strategy<Value = Vec<u8>> {
        (vec(span_bytes(), 0..4), any::<bool>(), unknown()).prop_map(|(spans, scope, u)| {
            let mut v = if scope {
                ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        ..Default::default()
                    }),
                    schema_url: "s".into(),
                    ..Default::default()
                }
                .encode_to_vec()
            } else {
                u
            };
            for s in spans {
                v.extend(field(2, WireType::LengthDelimited, &s));
            }
            v
        })
    }

    fn resource() -> impl Strategy<Value = Resource> {
        (vec(key_value(), 0..3), any::<u32>()).prop_map(|(attributes, dropped)| Resource {
            attributes,
            dropped_attributes_count: dropped,
            ..Default::default()
        })
    }

    /// A resource before, after or between its scope spans, sometimes twice (merged).
    fn resource_spans_bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            vec(option::of(resource()), 3),
            vec(scope_spans_bytes(), 0..3),
            unknown(),
        )
            .prop_map(|(resources, scopes, u)| {
                let resource = |r: &Option<Resource>| {
                    r.as_ref().map_or(vec![], |r| {
                        field(1, WireType::LengthDelimited, &r.encode_to_vec())
                    })
                };
                let mut v = resource(&resources[0]);
                for (i, s) in scopes.iter().enumerate() {
                    v.extend(field(2, WireType::LengthDelimited, s));
                    if i == 0 {
                        v.extend(resource(&resources[1]));
                    }
                }
                v.extend(u);
                v.extend(resource(&resources[2]));
                v
            })
    }

    fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
        (vec(resource_spans_bytes(), 0..4), unknown()).prop_map(|(rs, u)| {
            let mut v = u;
            for r in rs {
                v.extend(field(1, WireType::LengthDelimited, &r));
            }
            v
        })
    }

    /// A valid record and a way to damage it.
    #[derive(Debug, Clone)]
    enum Damage {
        Truncate(prop::sample::Index),
        Flip(prop::sample::Index, u8),
        Insert(prop::sample::Index, u8),
        Remove(prop::sample::Index),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            any::<prop::sample::Index>().prop_map(Damage::Truncate),
            (any::<prop::sample::Index>(), 1u8..).prop_map(|(i, x)| Damage::Flip(i, x)),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
            any::<prop::sample::Index>().prop_map(Damage::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn scan_equals_prost(bytes in request_bytes()) {
            prop_assert!(same(&bytes)?, "a valid record must decode");
        }

        #[test]
        fn damaged_records_fail_alike(bytes in request_bytes(), damages in vec(damage(), 1..3)) {
            let mut bytes = bytes;
            for d in damages {
                if bytes.is_empty() {
                    break;
                }
                match d {
                    Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
                    Damage::Flip(i, x) => {
                        let i = i.index(bytes.len());
                        bytes[i] ^= x;
                    }
                    Damage::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), b),
                    Damage::Remove(i) => {
                        bytes.remove(i.index(bytes.len()));
                    }
                }
            }
            same(&bytes)?;
        }

        #[test]
        fn arbitrary_bytes_fail_alike(bytes in vec(any::<u8>(), 0..64)) {
            same(&bytes)?;
        }
    }

    #[test]
    fn invalid_utf8_and_field_merges_match() {
        // The lean messages carry strings as bytes, so invalid UTF-8 can be written.
        let kv = |k: &[u8], v: wire::any_value::Value| wire::KeyValue {
            key: Bytes::copy_from_slice(k),
            value: Some(wire::AnyValue { value: Some(v) }),
        };
        let bad = Bytes::from_static(b"\xffcart\xc3");
        let span = wire::Span {
            trace_id: Bytes::from_static(&[1; 16]),
            span_id: Bytes::from_static(&[2; 8]),
            name: bad.clone(),
            attributes: vec![kv(
                b"http.route",
                wire::any_value::Value::StringValue(bad.clone()),
            )],
            events: vec![wire::Event {
                name: Bytes::from_static(b"exception"),
                attributes: vec![kv(
                    b"exception.type",
                    wire::any_value::Value::StringValue(bad.clone()),
                )],
            }],
            status: Some(wire::Status {
                message: bad.clone(),
                code: 2,
            }),
            ..Default::default()
        };
        let req = wire::ExportTraceServiceRequest {
            resource_spans: vec![wire::ResourceSpans {
                resource: Some(wire::Resource {
                    attributes: vec![kv(
                        b"service.name",
                        wire::any_value::Value::StringValue(bad.clone()),
                    )],
                }),
                scope_spans: vec![wire::ScopeSpans { spans: vec![span] }],
            }],
        };
        let bytes = req.encode_to_vec();
        assert!(same(&bytes).unwrap());
        let mut out = Vec::new();
        SpanDecoder::new(&keep(), 4)
            .decode_proto(&bytes, &mut out)
            .unwrap();
        assert_eq!(&*out[0].name, "\u{fffd}");
        assert_eq!(&*out[0].service, "\u{fffd}");
        assert_eq!(out[0].exception_type.as_deref(), Some("\u{fffd}"));
        assert_eq!(
            out[0].status_message.as_deref(),
            Some("\u{fffd}cart\u{fffd}")
        );
        assert_eq!(
            out[0].attribute("http.route"),
            Some(&AttrValue::Str("\u{fffd}cart\u{fffd}".into()))
        );
        // The kept attributes' Vec is exactly as large as needed.
        assert_eq!(out[0].attributes.capacity(), out[0].attributes.len());
    }

    /// Unknown groups nested around prost's recursion limit: both fail at the same depth.
    #[test]
    fn nested_groups_fail_at_the_same_depth() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        };
        let mut outcomes = Vec::new();
        for depth in 85..100 {
            let mut g = field(9, WireType::Varint, &[1]);
            for _ in 0..depth {
                let mut outer = field(60, WireType::StartGroup, &g);
                outer.extend(field(60, WireType::EndGroup, &[]));
                g = outer;
            }
            let mut s = span.encode_to_vec();
            s.extend(g);
            let ss = field(2, WireType::LengthDelimited, &s);
            let rs = field(2, WireType::LengthDelimited, &ss);
            let req = field(1, WireType::LengthDelimited, &rs);
            outcomes.push(same(&req).unwrap());
        }
        assert!(outcomes.contains(&true) && outcomes.contains(&false));
    }

    #[test]
    fn wire_errors_match() {
        let ok_span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }
        .encode_to_vec();
        let wrap = |span: &[u8]| {
            let ss = field(2, WireType::LengthDelimited, span);
            let rs = field(2, WireType::LengthDelimited, &ss);
            field(1, WireType::LengthDelimited, &rs)
        };
        let cases: Vec<Vec<u8>> = vec![
            // A declared field of another wire type: name as a varint, kind as bytes.
            [ok_span.clone(), field(5, WireType::Varint, &[1])].concat(),
            [ok_span.clone(), field(6, WireType::LengthDelimited, &[1])].concat(),
            [ok_span.clone(), field(7, WireType::ThirtyTwoBit, &[0; 4])].concat(),
            // A stray end group, a group closed by another tag.
            [ok_span.clone(), field(70, WireType::EndGroup, &[])].concat(),
            [
                ok_span.clone(),
                field(70, WireType::StartGroup, &[]),
                field(71, WireType::EndGroup, &[]),
            ]
            .concat(),
            // Wire types 6 and 7, tag 0, a key over 32 bits.
            [ok_span.clone(), vec![0x0e, 0]].concat(),
            [ok_span.clone(), vec![0x0f, 0]].concat(),
            [ok_span.clone(), vec![0x00, 0]].concat(),
            [ok_span.clone(), vec![0x80, 0x80, 0x80, 0x80, 0x10, 0]].concat(),
            // Ten-byte varints: the largest and one past 2^64, and an eleven-byte one.
            [ok_span.clone(), vec![0x30], vec![0xff; 9], vec![0x01]].concat(),
            [ok_span.clone(), vec![0x30], vec![0xff; 9], vec![0x02]].concat(),
            [ok_span.clone(), vec![0x30], vec![0x80; 10], vec![0x00]].concat(),
            // A kind of 2^32 + 2: int32 truncates it to 2 (server).
            [ok_span.clone(), vec![0x30, 0x82, 0x80, 0x80, 0x80, 0x10]].concat(),
            // A fixed64 cut short.
            [ok_span.clone(), vec![0x39, 1, 2, 3]].concat(),
        ];
        let mut accepted = 0;
        for case in &cases {
            accepted += usize::from(same(&wrap(case)).unwrap());
        }
        assert_eq!(accepted, 2, "the varint of 2^64 - 1 and the truncated kind");
        let mut out = Vec::new();
        SpanDecoder::new(&keep(), 4)
            .decode_proto(&wrap(&cases[12]), &mut out)
            .unwrap();
        assert_eq!(out[0].kind, SpanKind::Server);
    }
}
