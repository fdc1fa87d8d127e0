//! The connector's semantics (module docs), case by case, on the exposition.

use super::*;
use crate::model::AttrValue;

fn trace(n: u8) -> TraceId {
    TraceId([n; 16])
}

fn span_id(n: u8) -> SpanId {
    SpanId([n; 8])
}

fn span(
    service: &str,
    kind: SpanKind,
    id: u8,
    parent: Option<u8>,
    millis: i64,
    error: bool,
) -> SpanSummary {
    SpanSummary {
        trace_id: trace(1),
        span_id: span_id(id),
        parent_span_id: parent.map(span_id),
        service: service.into(),
        name: "op".into(),
        kind,
        status: if error {
            StatusCode::Error
        } else {
            StatusCode::Unset
        },
        status_message: None,
        start_unix_nanos: 1_000_000_000,
        end_unix_nanos: 1_000_000_000 + millis * 1_000_000,
        exception_type: None,
        attributes: Vec::new(),
    }
}

fn with(mut s: SpanSummary, k: &str, v: &str) -> SpanSummary {
    s.attributes.push((k.into(), AttrValue::Str(v.into())));
    s
}

fn render(g: &ServiceGraph) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&g.registry().gather(), &mut buf)
        .unwrap();
    String::from_utf8(buf).unwrap()
}

/// The value of the sample `name{labels}` (labels as rendered, sorted by name).
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

fn graph(cfg: ServiceGraphConfig) -> ServiceGraph {
    ServiceGraph::new(&cfg).unwrap()
}

const EDGE: &str = "client=\"frontend\",connection_type=\"\",failed=\"false\",server=\"cart\"";

#[test]
fn a_client_and_its_server_span_make_one_edge_whichever_comes_first() {
    for server_first in [false, true] {
        let mut g = graph(ServiceGraphConfig::default());
        let client = span("frontend", SpanKind::Client, 2, Some(1), 30, false);
        let server = span("cart", SpanKind::Server, 3, Some(2), 20, false);
        let (a, b) = if server_first {
            (server, client)
        } else {
            (client, server)
        };
        g.observe(&[a]);
        assert_eq!(g.stats().waiting, 1);
        g.observe(&[b]);
        assert_eq!(g.stats().waiting, 0);
        let text = render(&g);
        assert_eq!(sample(&text, REQUEST_TOTAL, EDGE), Some(1.0), "{text}");
        assert_eq!(sample(&text, REQUEST_FAILED, EDGE), Some(0.0));
        // 20 ms on the server: bucket le=0.05; 30 ms on the client: the same bucket.
        let server_le_001 = format!("{SERVER_SECONDS}_bucket");
        assert_eq!(
            sample(&text, &server_le_001, &format!("{EDGE},le=\"0.01\"")),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, &server_le_001, &format!("{EDGE},le=\"0.05\"")),
            Some(1.0)
        );
        let sum = |name: &str| sample(&text, &format!("{name}_sum"), EDGE).unwrap();
        assert!((sum(SERVER_SECONDS) - 0.020).abs() < 1e-9);
        assert!((sum(CLIENT_SECONDS) - 0.030).abs() < 1e-9);
    }
}

#[test]
fn either_side_failing_fails_the_edge() {
    let mut g = graph(ServiceGraphConfig::default());
    g.observe(&[
        span("frontend", SpanKind::Client, 2, Some(1), 30, false),
        span("cart", SpanKind::Server, 3, Some(2), 20, true),
    ]);
    let text = render(&g);
    let failed = EDGE.replace("failed=\"false\"", "failed=\"true\"");
    assert_eq!(sample(&text, REQUEST_TOTAL, &failed), Some(1.0), "{text}");
    assert_eq!(sample(&text, REQUEST_FAILED, &failed), Some(1.0));
}

#[test]
fn producer_and_consumer_are_a_messaging_edge() {
    let mut g = graph(ServiceGraphConfig::default());
    g.observe(&[
        span("orders", SpanKind::Producer, 2, Some(1), 5, false),
        span("billing", SpanKind::Consumer, 3, Some(2), 7, false),
    ]);
    let text = render(&g);
    assert_eq!(
        sample(
            &text,
            REQUEST_TOTAL,
            "client=\"orders\",connection_type=\"messaging_system\",failed=\"false\",server=\"billing\""
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn a_client_span_with_a_database_name_is_a_whole_database_edge() {
    let mut g = graph(ServiceGraphConfig::default());
    g.observe(&[with(
        span("cart", SpanKind::Client, 2, Some(1), 4, false),
        "db.name",
        "carts",
    )]);
    assert_eq!(
        g.stats().waiting,
        0,
        "nothing waits for a database's server span"
    );
    let text = render(&g);
    assert_eq!(
        sample(
            &text,
            REQUEST_TOTAL,
            "client=\"cart\",connection_type=\"database\",failed=\"false\",server=\"carts\""
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn expired_halves_are_unpaired_and_become_virtual_nodes_where_they_can() {
    let mut g = graph(ServiceGraphConfig::default());
    let t0 = Instant::now();
    g.observe_at(
        &[
            // A client span whose server is not instrumented, naming its peer.
            with(
                span("frontend", SpanKind::Client, 2, Some(1), 30, false),
                "peer.service",
                "payments-gateway",
            ),
            // A client span with no peer attribute.
            span("frontend", SpanKind::Client, 4, Some(1), 30, false),
            // A root server span: its client is the user.
            span("frontend", SpanKind::Server, 1, None, 50, false),
            // A server span whose parent is an internal span: never paired.
            span("cart", SpanKind::Server, 9, Some(8), 10, false),
        ],
        t0,
    );
    assert_eq!(g.stats().waiting, 4);
    g.expire(t0 + Duration::from_secs(1));
    assert_eq!(g.stats().waiting, 4, "not before the ttl");
    g.expire(t0 + Duration::from_secs(3));
    assert_eq!(g.stats().waiting, 0);
    assert_eq!(g.stats().expired, 4);
    let text = render(&g);
    let virt = |client: &str, server: &str| {
        sample(
            &text,
            REQUEST_TOTAL,
            &format!(
                "client=\"{client}\",connection_type=\"virtual_node\",failed=\"false\",server=\"{server}\""
            ),
        )
    };
    assert_eq!(virt("frontend", "payments-gateway"), Some(1.0), "{text}");
    assert_eq!(virt("frontend", "unknown"), Some(1.0));
    assert_eq!(virt("user", "frontend"), Some(1.0));
    assert_eq!(
        virt("", "cart"),
        None,
        "a half with no client stays unpaired"
    );
    assert_eq!(
        sample(
            &text,
            UNPAIRED,
            "client=\"\",connection_type=\"\",server=\"cart\""
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            UNPAIRED,
            "client=\"frontend\",connection_type=\"\",server=\"\""
        ),
        Some(2.0)
    );
}

#[test]
fn a_full_store_drops_new_halves_but_still_counts_whole_edges() {
    let mut g = graph(ServiceGraphConfig {
        store: StoreConfig {
            ttl: Duration::from_secs(2),
            max_items: 1,
        },
        ..Default::default()
    });
    g.observe(&[
        span("frontend", SpanKind::Client, 2, Some(1), 30, false),
        span("frontend", SpanKind::Client, 4, Some(1), 30, false),
        with(
            span("cart", SpanKind::Client, 5, Some(3), 4, false),
            "db.name",
            "carts",
        ),
    ]);
    assert_eq!(g.stats().waiting, 1);
    let text = render(&g);
    assert_eq!(
        sample(
            &text,
            DROPPED,
            "client=\"frontend\",connection_type=\"\",server=\"\""
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            REQUEST_TOTAL,
            "client=\"cart\",connection_type=\"database\",failed=\"false\",server=\"carts\""
        ),
        Some(1.0)
    );
}

#[test]
fn dimensions_are_labels_of_their_side_and_part_of_the_series() {
    let mut g = graph(ServiceGraphConfig {
        dimensions: vec!["http.route".into()],
        ..Default::default()
    });
    for (id, route) in [(2u8, "/a"), (4, "/b")] {
        g.observe(&[
            span("frontend", SpanKind::Client, id, Some(1), 30, false),
            with(
                span("cart", SpanKind::Server, id + 1, Some(id), 20, false),
                "http.route",
                route,
            ),
        ]);
    }
    let text = render(&g);
    for route in ["/a", "/b"] {
        assert_eq!(
            sample(
                &text,
                REQUEST_TOTAL,
                &format!("{EDGE},server_http_route=\"{route}\"")
            ),
            Some(1.0),
            "{text}"
        );
    }
}

#[test]
fn workers_share_the_series_not_the_store() {
    let mut a = graph(ServiceGraphConfig::default());
    let mut b = a.for_another_worker();
    a.observe(&[span("frontend", SpanKind::Client, 2, Some(1), 30, false)]);
    b.observe(&[span("cart", SpanKind::Server, 3, Some(2), 20, false)]);
    assert_eq!((a.stats().waiting, b.stats().waiting), (1, 1));
    a.observe(&[span("cart", SpanKind::Server, 3, Some(2), 20, false)]);
    assert_eq!(sample(&render(&b), REQUEST_TOTAL, EDGE), Some(1.0));
}

#[test]
fn idle_series_are_dropped() {
    let mut g = graph(ServiceGraphConfig {
        series_idle_timeout: Duration::from_secs(60),
        ..Default::default()
    });
    let t0 = Instant::now();
    g.observe_at(
        &[
            span("frontend", SpanKind::Client, 2, Some(1), 30, false),
            span("cart", SpanKind::Server, 3, Some(2), 20, false),
        ],
        t0,
    );
    g.expire(t0 + Duration::from_secs(30));
    assert!(sample(&render(&g), REQUEST_TOTAL, EDGE).is_some());
    g.expire(t0 + Duration::from_secs(61));
    assert!(sample(&render(&g), REQUEST_TOTAL, EDGE).is_none());
}

#[test]
fn config_errors_name_the_key() {
    let e = ServiceGraphConfig {
        buckets: Some(vec![1.0, 0.5]),
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("metrics.service_graph.buckets"), "{e}");
    let e = ServiceGraphConfig {
        store: StoreConfig {
            ttl: Duration::ZERO,
            max_items: 1,
        },
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("store.ttl"), "{e}");
}

#[test]
fn every_edge_series_has_its_latest_request_as_exemplar() {
    let mut g = graph(ServiceGraphConfig::default());
    g.observe(&[
        span("frontend", SpanKind::Client, 2, Some(1), 30, false),
        span("cart", SpanKind::Server, 3, Some(2), 20, false),
    ]);
    let mut ex = crate::telemetry::openmetrics::Exemplars::new();
    g.exemplars(&mut ex);
    let labels = |text: &str| {
        text.split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let mut p = prometheus::proto::LabelPair::default();
                p.set_name(k.to_string());
                p.set_value(v.trim_matches('"').to_string());
                p
            })
            .collect::<Vec<_>>()
    };
    let key = |name| crate::telemetry::openmetrics::series_key(name, &labels(EDGE));
    let server = ex[&key(SERVER_SECONDS)];
    assert_eq!(server.trace_id, trace(1));
    assert_eq!(
        server.span_id,
        span_id(2),
        "the client span made the request"
    );
    assert!((server.value - 0.020).abs() < 1e-9);
    assert!((ex[&key(CLIENT_SECONDS)].value - 0.030).abs() < 1e-9);
    assert_eq!(ex[&key(REQUEST_TOTAL)].value, 1.0);
    assert!(
        !ex.contains_key(&key(REQUEST_FAILED)),
        "no failed request, no exemplar"
    );
}
