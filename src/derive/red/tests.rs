// Why one file over 600 lines: the RED unit tests share one set of span fixtures.
use super::labels::{decode_dimensions, encode_dimension, label_name, write_double};
use super::*;
use crate::model::{AttrValue, SpanId, TraceId};
use prometheus::{Encoder, TextEncoder};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell as StdCell;

/// Counts this thread's allocations, to show the hot path makes none for existing series.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: StdCell<u64> = const { StdCell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the count is a
// thread-local `Cell` with a const initializer, which itself never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

fn span(n: u64, service: &str, name: &str, kind: SpanKind, nanos: i64) -> SpanSummary {
    let mut t = [0u8; 16];
    t[8..].copy_from_slice(&(n + 1).to_be_bytes());
    SpanSummary {
        trace_id: TraceId(t),
        span_id: SpanId((n + 1).to_be_bytes()),
        parent_span_id: None,
        service: service.into(),
        name: name.into(),
        kind,
        status: StatusCode::Unset,
        status_message: None,
        start_unix_nanos: 1_700_000_000_000_000_000,
        end_unix_nanos: 1_700_000_000_000_000_000 + nanos,
        exception_type: None,
        attributes: Vec::new(),
    }
}

fn server(n: u64, name: &str, nanos: i64) -> SpanSummary {
    span(n, "checkout", name, SpanKind::Server, nanos)
}

fn text(red: &RedMetrics) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&red.registry().gather(), &mut buf)
        .unwrap();
    String::from_utf8(buf).unwrap()
}

/// The value of the sample line that starts with `prefix` (name and labels), if any.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .map(|l| l[prefix.len()..].trim().parse().unwrap())
}

fn calls(text: &str, name: &str) -> Option<f64> {
    sample(
        text,
        &format!(
            "traces_span_metrics_calls_total{{service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"{name}\",status_code=\"STATUS_CODE_UNSET\"}}"
        ),
    )
}

fn cfg() -> RedConfig {
    RedConfig::default()
}

#[test]
fn default_buckets_are_the_connectors_in_seconds() {
    let b = connector_default_buckets();
    assert_eq!(
        b,
        vec![
            0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0,
            15.0
        ]
    );
    assert_eq!(cfg().effective_buckets(), b);
    let t = tempo_default_buckets();
    assert_eq!(t.len(), 14);
    assert_eq!(t[0], 0.002);
    assert_eq!(t[13], 16.384);
    let tempo = RedConfig {
        naming: RedNaming::Tempo,
        ..cfg()
    };
    assert_eq!(tempo.effective_buckets(), t);
}

#[test]
fn exposition_has_the_connectors_names_and_labels() {
    let mut red = RedMetrics::new(&cfg()).unwrap();
    let mut s = server(1, "GET /cart", 3_000_000);
    s.status = StatusCode::Error;
    red.observe(&[s, server(2, "GET /cart", 1_000_000)]);
    let t = text(&red);
    assert!(
        t.contains("# TYPE traces_span_metrics_calls_total counter"),
        "{t}"
    );
    assert!(
        t.contains("# TYPE traces_span_metrics_duration_seconds histogram"),
        "{t}"
    );
    assert!(t.contains(
        "traces_span_metrics_calls_total{service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /cart\",status_code=\"STATUS_CODE_ERROR\"} 1"
    ), "{t}");
    assert!(t.contains(
        "traces_span_metrics_duration_seconds_bucket{service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /cart\",status_code=\"STATUS_CODE_ERROR\",le=\"0.004\"} 1"
    ), "{t}");
    assert_eq!(calls(&t, "GET /cart"), Some(1.0));
}

#[test]
fn tempo_naming() {
    let mut red = RedMetrics::new(&RedConfig {
        naming: RedNaming::Tempo,
        ..cfg()
    })
    .unwrap();
    red.observe(&[server(1, "op", 5_000_000)]);
    let t = text(&red);
    assert!(t.contains(
        "traces_spanmetrics_calls_total{service=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"op\",status_code=\"STATUS_CODE_UNSET\"} 1"
    ), "{t}");
    assert!(t.contains("traces_spanmetrics_latency_bucket{service=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"op\",status_code=\"STATUS_CODE_UNSET\",le=\"0.008\"} 1"), "{t}");
    assert!(t.contains("le=\"16.384\""), "{t}");
}

#[test]
fn only_configured_kinds_count() {
    let mut red = RedMetrics::new(&cfg()).unwrap();
    let done = red.observe(&[
        span(1, "a", "x", SpanKind::Client, 1),
        span(2, "a", "x", SpanKind::Internal, 1),
        span(3, "a", "x", SpanKind::Producer, 1),
        span(4, "a", "x", SpanKind::Consumer, 1),
        span(5, "a", "x", SpanKind::Server, 1),
    ]);
    assert_eq!(done.counted, 2);
    assert_eq!(red.series(), 2);
    let all = RedConfig {
        span_kinds: vec![
            SpanKind::Unspecified,
            SpanKind::Internal,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Producer,
            SpanKind::Consumer,
        ],
        ..cfg()
    };
    let mut red = RedMetrics::new(&all).unwrap();
    let spans: Vec<_> = (0..6)
        .map(|k| span(k, "a", "x", SpanKind::from_otlp(k as i32), 1))
        .collect();
    assert_eq!(red.observe(&spans).counted, 6);
    assert_eq!(red.series(), 6);
}

/// Bounds are upper-inclusive; the value is `nanos / 1e9` as the connector computes it.
#[test]
fn bucket_placement_at_boundaries() {
    let mut red = RedMetrics::new(&cfg()).unwrap();
    let cases: &[(i64, &str)] = &[
        (0, "0.002"),             // zero lands in the first bucket
        (-5, "0.002"),            // end before start: duration 0
        (2_000_000, "0.002"),     // exactly the first bound
        (2_000_001, "0.004"),     // just above it
        (10_000_000, "0.01"),     // exactly 10 ms
        (1_000_000_000, "1"),     // exactly 1 s
        (1_400_000_000, "1.4"),   // exactly 1.4 s
        (15_000_000_000, "15"),   // the last finite bound
        (15_000_000_001, "+Inf"), // beyond it
        (3_600_000_000_000, "+Inf"),
    ];
    let bounds = connector_default_buckets();
    for (i, (nanos, le)) in cases.iter().enumerate() {
        let name = format!("case{i}");
        red.observe(&[server(i as u64, &name, *nanos)]);
        let t = text(&red);
        let prefix = |le: &str| {
            format!(
                "traces_span_metrics_duration_seconds_bucket{{service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"{name}\",status_code=\"STATUS_CODE_UNSET\",le=\"{le}\"}}"
            )
        };
        // Cumulative: 0 below the expected bucket, 1 from it on.
        let mut reached = false;
        for b in bounds
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_string()])
        {
            reached |= b == *le;
            let got = sample(&t, &prefix(&b)).unwrap_or_else(|| panic!("no bucket {b} in {t}"));
            assert_eq!(got, f64::from(u8::from(reached)), "{nanos} ns, le={b}");
        }
        let expected_sum = (*nanos).max(0) as f64 / 1e9;
        let sum = sample(
            &t,
            &format!("traces_span_metrics_duration_seconds_sum{{service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"{name}\",status_code=\"STATUS_CODE_UNSET\"}}"),
        )
        .unwrap();
        assert_eq!(sum, expected_sum);
    }
}

#[test]
fn overflow_folds_new_label_sets_into_one_series() {
    let mut red = RedMetrics::new(&RedConfig {
        max_series: 2,
        ..cfg()
    })
    .unwrap();
    let done = red.observe(&[
        server(1, "a", 1),
        server(2, "b", 1),
        server(3, "c", 1), // third label set: overflow
        server(4, "a", 1), // existing series still count
        server(5, "d", 1), // overflow again
    ]);
    assert_eq!(
        done,
        Observed {
            counted: 5,
            duplicates: 0,
            overflowed: 2,
            replayed: 0,
        }
    );
    assert_eq!(red.series(), 3, "two series and the overflow series");
    assert_eq!(red.overflowed(), 2);
    let t = text(&red);
    assert_eq!(calls(&t, "a"), Some(2.0));
    assert_eq!(calls(&t, "b"), Some(1.0));
    assert_eq!(calls(&t, "c"), None);
    assert_eq!(
        sample(
            &t,
            "traces_span_metrics_calls_total{otel_metric_overflow=\"true\"}"
        ),
        Some(2.0),
        "{t}"
    );
    assert_eq!(
        sample(
            &t,
            "traces_span_metrics_duration_seconds_count{otel_metric_overflow=\"true\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &t,
            "traces_span_metrics_duration_seconds_bucket{otel_metric_overflow=\"true\",le=\"0.002\"}"
        ),
        Some(2.0)
    );
}

#[test]
fn idle_series_expire_one_by_one() {
    let mut red = RedMetrics::new(&RedConfig {
        max_series: 2,
        series_idle_timeout: Duration::from_secs(10),
        ..cfg()
    })
    .unwrap();
    let t0 = Instant::now();
    let s = Duration::from_secs;
    red.observe_at(&[server(1, "a", 1)], t0);
    red.observe_at(&[server(2, "b", 1)], t0 + s(6));
    red.observe_at(&[server(3, "c", 1)], t0 + s(7)); // overflow
    assert_eq!(red.series(), 3);
    assert_eq!(red.expire_idle(t0 + s(5)), 0);
    assert_eq!(red.expire_idle(t0 + s(9)), 0);
    // `a` is idle for exactly the timeout: gone; `b` and the overflow stay.
    assert_eq!(red.expire_idle(t0 + s(10)), 1);
    let t = text(&red);
    assert_eq!(calls(&t, "a"), None);
    assert_eq!(calls(&t, "b"), Some(1.0));
    assert_eq!(red.series(), 2);
    // `b` keeps itself alive by seeing spans.
    red.observe_at(&[server(4, "b", 1)], t0 + s(15));
    assert_eq!(red.expire_idle(t0 + s(16)), 0);
    // The overflow series (last span at 7 s) expires on its own at 17 s.
    assert_eq!(red.expire_idle(t0 + s(17)), 1);
    assert!(!text(&red).contains("otel_metric_overflow"));
    // `a` comes back: a new series from zero, and under the cap again.
    red.observe_at(&[server(5, "a", 1)], t0 + s(18));
    assert_eq!(calls(&text(&red), "a"), Some(1.0));
    assert_eq!(red.overflowed(), 1);
    assert_eq!(red.expire_idle(t0 + s(100)), 2);
    assert_eq!(red.series(), 0);
    // Nothing left, nothing due.
    assert_eq!(red.expire_idle(t0 + s(1000)), 0);
}

#[test]
fn a_huge_timeout_does_not_overflow() {
    let mut red = RedMetrics::new(&RedConfig {
        series_idle_timeout: Duration::MAX,
        ..cfg()
    })
    .unwrap();
    let t0 = Instant::now();
    red.observe_at(&[server(1, "a", 1)], t0);
    assert_eq!(red.expire_idle(t0 + Duration::from_secs(1_000_000)), 0);
    assert_eq!(red.series(), 1);
}

#[test]
fn zero_timeout_keeps_series() {
    let mut red = RedMetrics::new(&RedConfig {
        series_idle_timeout: Duration::ZERO,
        ..cfg()
    })
    .unwrap();
    let t0 = Instant::now();
    red.observe_at(&[server(1, "a", 1)], t0);
    assert_eq!(red.expire_idle(t0 + Duration::from_secs(1_000_000)), 0);
    assert_eq!(red.series(), 1);
}

#[test]
fn redeliveries_within_the_window_count_once() {
    let mut red = RedMetrics::new(&RedConfig {
        dedup_window: 3,
        ..cfg()
    })
    .unwrap();
    let batch = [server(1, "a", 1), server(2, "a", 1), server(3, "a", 1)];
    assert_eq!(red.observe(&batch).counted, 3);
    // The same record again (a redelivery after a rebalance): nothing counts.
    let again = red.observe(&batch);
    assert_eq!((again.counted, again.duplicates), (0, 3));
    assert_eq!(calls(&text(&red), "a"), Some(3.0));
    // The filter remembers at least the last 3 spans and at most 6: two new spans leave
    // 1, 2 and 3 remembered, one more (a window's worth since 3) forgets them.
    red.observe(&[server(4, "a", 1), server(5, "a", 1)]);
    assert_eq!(red.dedup_len(), 5);
    let kept = red.observe(&[server(1, "a", 1)]);
    assert_eq!((kept.counted, kept.duplicates), (0, 1));
    red.observe(&[server(6, "a", 1)]);
    assert_eq!(red.dedup_len(), 3);
    let late = red.observe(&[server(3, "a", 1), server(4, "a", 1)]);
    assert_eq!((late.counted, late.duplicates), (1, 1));
    assert_eq!(red.duplicates(), 5);
    // A duplicate inside one batch counts once too.
    let inner = red.observe(&[server(9, "a", 1), server(9, "a", 1)]);
    assert_eq!((inner.counted, inner.duplicates), (1, 1));
}

#[test]
fn dedup_off_counts_every_copy() {
    let mut red = RedMetrics::new(&RedConfig {
        dedup_window: 0,
        ..cfg()
    })
    .unwrap();
    red.observe(&[server(1, "a", 1), server(1, "a", 1)]);
    assert_eq!(calls(&text(&red), "a"), Some(2.0));
}

#[test]
fn same_span_id_in_another_trace_is_not_a_duplicate() {
    let mut red = RedMetrics::new(&cfg()).unwrap();
    let a = server(1, "a", 1);
    let mut b = a.clone();
    b.trace_id.0[0] = 0xff;
    assert_eq!(red.observe(&[a, b]).counted, 2);
}

#[test]
fn dimensions_become_sanitized_labels() {
    let yaml = r#"
dimensions:
  - http.route
  - name: http.response.status_code
  - name: deployment.environment
    default: none
  - 2xx-ratio
  - flag
  - ratio
"#;
    let c: RedConfig = serde_yaml::from_str(yaml).unwrap();
    let mut red = RedMetrics::new(&c).unwrap();
    let mut s = server(1, "GET /cart", 1);
    s.attributes = vec![
        ("http.route".into(), AttrValue::Str("/cart".into())),
        ("http.response.status_code".into(), AttrValue::Int(503)),
        ("flag".into(), AttrValue::Bool(true)),
        ("ratio".into(), AttrValue::Double(1e-7)),
    ];
    let mut bare = server(2, "GET /cart", 1);
    bare.attributes.clear();
    red.observe(&[s, bare]);
    let t = text(&red);
    assert!(t.contains(
        "traces_span_metrics_calls_total{deployment_environment=\"none\",flag=\"true\",http_response_status_code=\"503\",http_route=\"/cart\",ratio=\"1e-7\",service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /cart\",status_code=\"STATUS_CODE_UNSET\"} 1"
    ), "{t}");
    // Without the attributes: only the dimension with a default is there.
    assert!(t.contains(
        "traces_span_metrics_calls_total{deployment_environment=\"none\",service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"GET /cart\",status_code=\"STATUS_CODE_UNSET\"} 1"
    ), "{t}");
    assert_eq!(red.series(), 2);
}

#[test]
fn label_names_follow_the_exporter() {
    assert_eq!(label_name("http.route").unwrap(), "http_route");
    assert_eq!(label_name("k8s.pod.name").unwrap(), "k8s_pod_name");
    assert_eq!(label_name("2xx").unwrap(), "key_2xx");
    assert_eq!(label_name("a__b").unwrap(), "a__b");
    assert_eq!(label_name("ümlaut").unwrap(), "_mlaut");
    assert_eq!(label_name("_x").unwrap(), "_x");
    assert!(label_name("...").is_err());
    assert!(label_name("").is_err());
}

#[test]
fn doubles_render_as_pdata_does() {
    let f = |d: f64| {
        let mut s = String::new();
        write_double(d, &mut s);
        s
    };
    assert_eq!(f(0.5), "0.5");
    assert_eq!(f(3.0), "3");
    assert_eq!(f(-2.25), "-2.25");
    assert_eq!(f(0.0), "0");
    assert_eq!(f(1e-6), "0.000001");
    assert_eq!(f(1e-7), "1e-7");
    assert_eq!(f(1.5e-7), "1.5e-7");
    assert_eq!(f(1e20), "100000000000000000000");
    assert_eq!(f(1e21), "1e+21");
    assert_eq!(f(-1.25e22), "-1.25e+22");
    assert_eq!(f(f64::NAN), "NaN");
    assert_eq!(f(f64::INFINITY), "Infinity");
    assert_eq!(f(f64::NEG_INFINITY), "-Infinity");
}

#[test]
fn dimension_encoding_round_trips() {
    let mut key = String::new();
    let weird = AttrValue::Str("=0000000003:-x".into());
    encode_dimension(Some(&weird), None, &mut key);
    encode_dimension(None, None, &mut key);
    encode_dimension(None, Some("dflt"), &mut key);
    encode_dimension(Some(&AttrValue::Int(-7)), Some("unused"), &mut key);
    encode_dimension(Some(&AttrValue::Str("".into())), None, &mut key);
    let back: Vec<_> = decode_dimensions(&key).collect();
    assert_eq!(
        back,
        vec![
            Some("=0000000003:-x"),
            None,
            Some("dflt"),
            Some("-7"),
            Some("")
        ]
    );
}

#[test]
fn config_defaults_and_validation() {
    let c: RedConfig = serde_yaml::from_str("{}").unwrap();
    assert!(c.enabled);
    assert_eq!(c.naming, RedNaming::Spanmetrics);
    assert_eq!(c.span_kinds, vec![SpanKind::Server, SpanKind::Consumer]);
    assert_eq!(c.max_series, 10_000);
    assert_eq!(c.series_idle_timeout, Duration::from_secs(600));
    c.validate().unwrap();

    let c: RedConfig = serde_yaml::from_str(
        "naming: tempo\nspan_kinds: [SPAN_KIND_CLIENT, producer]\nseries_idle_timeout: 90s\nbuckets: [0.1, 1]",
    )
    .unwrap();
    assert_eq!(c.naming, RedNaming::Tempo);
    assert_eq!(c.span_kinds, vec![SpanKind::Client, SpanKind::Producer]);
    assert_eq!(c.series_idle_timeout, Duration::from_secs(90));
    assert_eq!(c.effective_buckets(), vec![0.1, 1.0]);

    assert!(serde_yaml::from_str::<RedConfig>("max_serie: 3").is_err());
    assert!(serde_yaml::from_str::<RedConfig>("span_kinds: [sever]").is_err());
    assert!(serde_yaml::from_str::<RedConfig>("dimensions: [{name: a, dflt: b}]").is_err());

    let bad = |c: RedConfig| match c.validate() {
        Err(RedError::Invalid { key, .. }) => key,
        Ok(()) => panic!("accepted"),
    };
    let d = |n: &str| Dimension {
        name: n.into(),
        default: None,
    };
    assert_eq!(
        bad(RedConfig {
            buckets: Some(vec![0.1, 0.1]),
            ..cfg()
        }),
        "buckets[1]"
    );
    assert_eq!(
        bad(RedConfig {
            buckets: Some(vec![f64::INFINITY]),
            ..cfg()
        }),
        "buckets[0]"
    );
    assert_eq!(
        bad(RedConfig {
            buckets: Some(vec![]),
            ..cfg()
        }),
        "buckets"
    );
    assert_eq!(
        bad(RedConfig {
            max_series: 0,
            ..cfg()
        }),
        "max_series"
    );
    assert_eq!(
        bad(RedConfig {
            span_kinds: vec![],
            ..cfg()
        }),
        "span_kinds"
    );
    assert_eq!(
        bad(RedConfig {
            dimensions: vec![d("service.name")],
            ..cfg()
        }),
        "dimensions[0]"
    );
    assert_eq!(
        bad(RedConfig {
            dimensions: vec![d("a.b"), d("a_b")],
            ..cfg()
        }),
        "dimensions[1]"
    );
    assert_eq!(
        bad(RedConfig {
            dimensions: vec![d("__name__")],
            ..cfg()
        }),
        "dimensions[0]"
    );
    let msg = RedConfig {
        max_series: 0,
        ..cfg()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert_eq!(msg, "metrics.red.max_series = 0: must be at least 1");
}

#[test]
fn disabled_counts_nothing() {
    let mut red = RedMetrics::new(&RedConfig {
        enabled: false,
        ..cfg()
    })
    .unwrap();
    assert_eq!(red.observe(&[server(1, "a", 1)]).counted, 0);
    assert_eq!(red.series(), 0);
}

#[test]
fn registry_is_empty_until_a_span_counts() {
    let red = RedMetrics::new(&cfg()).unwrap();
    assert!(red.registry().gather().is_empty());
}

#[test]
fn observing_existing_series_allocates_nothing() {
    let c: RedConfig = serde_yaml::from_str(
        "dedup_window: 64\ndimensions: [http.route, http.response.status_code, {name: env, default: prod}, ratio]",
    )
    .unwrap();
    let mut red = RedMetrics::new(&c).unwrap();
    let batch = |from: u64| -> Vec<SpanSummary> {
        (from..from + 50)
            .map(|n| {
                let mut s = server(
                    n,
                    if n % 2 == 0 { "GET /a" } else { "GET /b" },
                    1_000 * n as i64,
                );
                s.attributes = vec![
                    ("http.route".into(), AttrValue::Str("/a".into())),
                    (
                        "http.response.status_code".into(),
                        AttrValue::Int(200 + (n % 3) as i64),
                    ),
                    ("ratio".into(), AttrValue::Double(0.25)),
                ];
                s
            })
            .collect()
    };
    // Warm up: every label set exists, the key buffer has grown.
    red.observe(&batch(0));
    red.observe(&batch(50));
    let series = red.series();
    // Build the input first: only `observe` is measured. Enough batches to cycle the
    // redelivery filter's window many times over.
    let batches: Vec<_> = (0..40).map(|i| batch(1_000 + 50 * i)).collect();
    let before = allocations();
    for b in &batches {
        assert_eq!(red.observe(b).counted, 50);
        red.expire_idle(Instant::now());
    }
    assert_eq!(allocations() - before, 0, "allocations on the hot path");
    assert_eq!(red.series(), series);
    // The counter does count: a new label set allocates its key and cell.
    red.observe(&[server(99_999, "GET /new", 1)]);
    assert!(allocations() - before > 0);
}

/// The label set of partition `p`'s server series `pay`.
fn pay_labels(p: i32) -> String {
    format!("partition=\"{p}\",service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"pay\",status_code=\"STATUS_CODE_UNSET\"")
}

fn per_partition() -> RedConfig {
    RedConfig {
        per_partition: true,
        ..cfg()
    }
}

#[test]
fn per_partition_series_move_with_their_partition_and_count_each_span_once() {
    let mut old = RedMetrics::new(&per_partition()).unwrap();
    // Partition 0: records at offsets 0..3, one span each; partition 1: one record.
    for n in 0..3 {
        let o = old.observe_record(&[server(n, "pay", 3_000_000)], 0, n as i64, false);
        assert_eq!(o.counted, 1);
    }
    old.observe_record(&[server(10, "pay", 3_000_000)], 1, 0, false);
    // The changelog value: offsets 0..3 of partition 0 (position 3). The old owner goes on
    // to count offset 3, and then loses the partition without writing again (kill -9).
    let mut state = crate::derive::slo::PartitionState::new(0);
    state.red = Some(old.export(0));
    old.observe_record(&[server(3, "pay", 3_000_000)], 0, 3, false);
    let t = text(&old);
    assert_eq!(
        sample(
            &t,
            &format!("traces_span_metrics_calls_total{{{}}}", pay_labels(0))
        ),
        Some(4.0),
        "{t}"
    );
    assert_eq!(
        sample(
            &t,
            &format!("traces_span_metrics_calls_total{{{}}}", pay_labels(1))
        ),
        Some(1.0)
    );

    let state = crate::derive::slo::PartitionState::from_json(&state.to_json()).unwrap();
    let mut new = RedMetrics::new(&per_partition()).unwrap();
    new.restore(0, state.red.as_ref(), Some(3)).unwrap();
    old.revoke(0);
    assert!(
        !text(&old).contains("partition=\"0\""),
        "the old owner still shows the partition:\n{}",
        text(&old)
    );
    // The new owner replays from offset 1: 1 and 2 are in the state, 3 is not.
    for n in 1..4 {
        let o = new.observe_record(&[server(n, "pay", 3_000_000)], 0, n as i64, true);
        assert_eq!(o.replayed + o.counted, 1, "offset {n}: {o:?}");
        assert_eq!(o.replayed, u64::from(n < 3), "offset {n}: {o:?}");
    }
    let t = text(&new);
    assert_eq!(
        sample(
            &t,
            &format!("traces_span_metrics_calls_total{{{}}}", pay_labels(0))
        ),
        Some(4.0),
        "each span once:\n{t}"
    );
    assert_eq!(
        sample(
            &t,
            &format!(
                "traces_span_metrics_duration_seconds_count{{{}}}",
                pay_labels(0)
            )
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(&t, "traces_span_metrics_duration_seconds_bucket{partition=\"0\",service_name=\"checkout\",span_kind=\"SPAN_KIND_SERVER\",span_name=\"pay\",status_code=\"STATUS_CODE_UNSET\",le=\"0.004\"}"),
        Some(4.0),
        "the buckets travel too:\n{t}"
    );
    assert_eq!(new.restored_replays(), 2);
    // Past the position the commit marks no longer apply: a new record counts.
    let o = new.observe_record(&[server(4, "pay", 3_000_000)], 0, 4, false);
    assert_eq!(o.counted, 1);
}

#[test]
fn a_state_counted_with_other_buckets_or_dimensions_is_not_restored() {
    let mut old = RedMetrics::new(&per_partition()).unwrap();
    old.observe_record(&[server(0, "pay", 3_000_000)], 2, 0, false);
    let state = old.export(2);
    let other_buckets = RedMetrics::new(&RedConfig {
        buckets: Some(vec![0.1, 1.0]),
        ..per_partition()
    })
    .unwrap();
    assert!(matches!(
        other_buckets.restore(2, Some(&state), Some(1)),
        Err(RedStateError::Buckets {
            found: 16,
            configured: 2
        })
    ));
    assert_eq!(other_buckets.series(), 0);
    let other_dims = RedMetrics::new(&RedConfig {
        dimensions: vec![Dimension {
            name: "http.route".into(),
            default: None,
        }],
        ..per_partition()
    })
    .unwrap();
    assert!(matches!(
        other_dims.restore(2, Some(&state), Some(1)),
        Err(RedStateError::Dimensions { .. })
    ));
}

#[test]
fn without_per_partition_only_the_commit_marks_skip_replays() {
    let mut red = RedMetrics::new(&cfg()).unwrap();
    assert_eq!(
        red.observe_record(&[server(0, "pay", 1)], 3, 7, true),
        Observed::default(),
        "counted before: skipped, and not a restored replay"
    );
    assert_eq!(
        red.observe_record(&[server(1, "pay", 1)], 3, 8, false)
            .counted,
        1
    );
    let t = text(&red);
    assert!(!t.contains("partition="), "{t}");
}
