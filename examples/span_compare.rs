//! The side-by-side span harness: tracejoin's RED metrics against the OpenTelemetry Collector's
//! spanmetrics connector, on one backlog of spans in a real Kafka broker, each measured alone.
//!
//!   scripts/span-compare.sh [--spans 1000000] [--spans-per-record 5] [--partitions 4]
//!                           [--workers 1|auto] [--only tracejoin|collector|both]
//!                           [--repartition never|auto|always] [--compression none|lz4|zstd|…]
//!                           [--scrape-ms 150] [--timeout-secs 900] [--rounds 1]
//!                           [--tracejoin-kafka-property KEY=VALUE ...]
//!
//! Produces the backlog once (OTLP `ExportTraceServiceRequest` records, the spans of one trace per
//! record, keyed by the trace id in lowercase hex and placed with murmur2 as a Java producer or
//! Kafka Streams would), then runs each system as a child process on it from the earliest offset,
//! in its own consumer group: the real `tracejoin run` (`TRACEJOIN_BIN`) and the Collector built
//! by `scripts/collector.sh` (`TRACEJOIN_COLLECTOR_BIN`, `tests/collector/config.yaml`). Each is
//! scraped until its `traces_span_metrics_calls_total` sums to the spans produced; at that moment
//! its CPU time and peak RSS are read from /proc and it is killed. Talks only to the broker named
//! by `TRACEJOIN_KAFKA_BOOTSTRAP`.

#[path = "common/procstat.rs"]
mod procstat;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CALLS: &str = "traces_span_metrics_calls_total";
const SERVICES: [&str; 5] = ["frontend", "checkout", "cart", "payments", "shipping"];
const ROUTES: [&str; 5] = [
    "/",
    "/cart",
    "/product/{id}",
    "/order/{id}",
    "/checkout/submit",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Only {
    Tracejoin,
    Collector,
    Both,
}

struct Args {
    spans: u64,
    spans_per_record: u64,
    partitions: i32,
    workers: String,
    only: Only,
    repartition: String,
    compression: String,
    scrape_every: Duration,
    timeout: Duration,
    /// Runs of each system on the one backlog, each in a new consumer group.
    rounds: u64,
    /// Extra librdkafka properties for tracejoin (`kafka.properties`), to try a setting.
    tracejoin_kafka_properties: Vec<(String, String)>,
}

fn args() -> Args {
    let mut a = Args {
        spans: 1_000_000,
        spans_per_record: 5,
        partitions: 4,
        workers: "1".into(),
        only: Only::Both,
        repartition: "never".into(),
        compression: "none".into(),
        scrape_every: Duration::from_millis(150),
        timeout: Duration::from_secs(900),
        rounds: 1,
        tracejoin_kafka_properties: Vec::new(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let (flag, value) = (pair[0].as_str(), pair.get(1).map(String::as_str));
        let number = || -> u64 {
            value
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number, not {value:?}"))
        };
        match flag {
            "--spans" => a.spans = number(),
            "--spans-per-record" => a.spans_per_record = number().max(1),
            "--partitions" => a.partitions = number() as i32,
            "--scrape-ms" => a.scrape_every = Duration::from_millis(number()),
            "--timeout-secs" => a.timeout = Duration::from_secs(number()),
            "--rounds" => a.rounds = number().max(1),
            "--workers" => match value {
                Some(v) if v == "auto" || v.parse::<u32>().is_ok_and(|n| n > 0) => {
                    a.workers = v.into()
                }
                _ => panic!("--workers auto|N, not {value:?}"),
            },
            "--only" => {
                a.only = match value {
                    Some("tracejoin") => Only::Tracejoin,
                    Some("collector") => Only::Collector,
                    Some("both") => Only::Both,
                    _ => panic!("--only tracejoin|collector|both, not {value:?}"),
                }
            }
            "--repartition" => match value {
                Some(v @ ("never" | "auto" | "always")) => a.repartition = v.into(),
                _ => panic!("--repartition never|auto|always, not {value:?}"),
            },
            "--tracejoin-kafka-property" => {
                let (key, v) = value.and_then(|v| v.split_once('=')).unwrap_or_else(|| {
                    panic!("--tracejoin-kafka-property KEY=VALUE, not {value:?}")
                });
                a.tracejoin_kafka_properties.push((key.into(), v.into()));
            }
            "--compression" => {
                a.compression = value
                    .unwrap_or_else(|| panic!("--compression needs a librdkafka codec"))
                    .into()
            }
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// A reproducible stream of pseudo-random numbers (xorshift64), so every run produces the same
/// routes, statuses and durations.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Bytes for an id; never all zero, which OTLP calls invalid.
    fn id<const N: usize>(&mut self) -> [u8; N] {
        let mut id = [0u8; N];
        for chunk in id.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        id[N - 1] |= 1;
        id
    }
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// One record: `spans` server spans of one trace, each in its own `ResourceSpans` (as a
/// Collector batches spans of several services), with a route and a 200/500 status (one in ten
/// a 500, marked as an error). Returns the trace id's lowercase hex (the key) and the encoding.
fn record(rng: &mut Xorshift, spans: u64, end_nanos: u64) -> (String, Vec<u8>) {
    let trace_id: [u8; 16] = rng.id();
    let mut parent: Vec<u8> = Vec::new();
    let resource_spans = (0..spans)
        .map(|i| {
            let r = rng.next();
            let route = ROUTES[(r % ROUTES.len() as u64) as usize];
            let failed = (r >> 16) % 10 == 0;
            let duration_nanos = 1_000_000 + (r >> 24) % 300_000_000;
            let span_id = rng.id::<8>().to_vec();
            let service = SERVICES[(i % SERVICES.len() as u64) as usize];
            let span = Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.clone(),
                parent_span_id: std::mem::replace(&mut parent, span_id),
                name: format!("GET {route}"),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: end_nanos - duration_nanos,
                end_time_unix_nano: end_nanos,
                attributes: vec![
                    attribute("http.route", any_value::Value::StringValue(route.into())),
                    attribute(
                        "http.response.status_code",
                        any_value::Value::IntValue(if failed { 500 } else { 200 }),
                    ),
                ],
                status: Some(Status {
                    code: if failed {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    ..Default::default()
                }),
                ..Default::default()
            };
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![attribute(
                        "service.name",
                        any_value::Value::StringValue(service.into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    let hex = trace_id.iter().map(|b| format!("{b:02x}")).collect();
    (
        hex,
        ExportTraceServiceRequest { resource_spans }.encode_to_vec(),
    )
}

struct Topics {
    spans: String,
    logs: String,
    out: String,
    dlq: String,
}

fn create_topics(bootstrap: &str, partitions: i32) -> Topics {
    let id = format!("{}-{}", std::process::id(), rand::random::<u32>());
    let t = Topics {
        spans: format!("compare-spans-{id}"),
        logs: format!("compare-logs-{id}"),
        out: format!("compare-out-{id}"),
        dlq: format!("compare-dlq-{id}"),
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = [&t.spans, &t.logs, &t.out, &t.dlq]
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = futures::executor::block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    for r in results {
        if let Err((topic, e)) = r {
            panic!("creating topic {topic}: {e}");
        }
    }
    t
}

/// Produces the backlog and checks the broker holds every record: a delivery failure would
/// otherwise only show up as a count that is never reached.
fn produce(bootstrap: &str, a: &Args, topic: &str) -> u64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Java's partitioner over the hex key: what tracejoin's internal topics use, so the
        // spans topic is co-partitioned as a Java or Kafka Streams producer would leave it.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", &a.compression)
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .expect("producer");
    let records = a.spans.div_ceil(a.spans_per_record);
    let end_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 1_000_000_000;
    let mut rng = Xorshift(0x5eed_cafe_f00d_d00d);
    let started = Instant::now();
    let mut left = a.spans;
    let mut bytes = 0u64;
    for _ in 0..records {
        let spans = left.min(a.spans_per_record);
        left -= spans;
        let (key, payload) = record(&mut rng, spans, end_nanos);
        bytes += payload.len() as u64;
        let mut pending = Some(BaseRecord::to(topic).key(&key).payload(&payload));
        while let Some(r) = pending.take() {
            if let Err((_, back)) = producer.send(r) {
                // The local queue is full: wait for deliveries to free it.
                std::thread::sleep(Duration::from_millis(5));
                pending = Some(back);
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let mut stored = 0i64;
    for partition in 0..a.partitions {
        let (low, high) = producer
            .client()
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        stored += high - low;
    }
    assert_eq!(
        stored as u64, records,
        "the broker holds {stored} of the {records} records produced"
    );
    println!(
        "backlog: {} spans in {records} records ({} spans each, {:.0} bytes per record, compression {}) on {} partitions, produced in {:.1} s",
        a.spans,
        a.spans_per_record,
        bytes as f64 / records as f64,
        a.compression,
        a.partitions,
        started.elapsed().as_secs_f64()
    );
    records
}

/// The body of `GET /metrics`, over HTTP/1.0 so the answer is neither chunked nor kept alive.
fn scrape(port: u16) -> Option<String> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.split_whitespace()
        .nth(1)
        .filter(|code| *code == "200")?;
    Some(body.to_string())
}

/// The sum of every series of `metric` in a Prometheus text exposition.
fn sum_of(exposition: &str, metric: &str) -> f64 {
    exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let value_part = match rest.chars().next()? {
                '{' => &rest[rest.rfind('}')? + 1..],
                ' ' => rest,
                _ => return None,
            };
            value_part.split_whitespace().next()?.parse::<f64>().ok()
        })
        // Not `sum()`: an empty f64 sum is -0.0, which prints as "-0".
        .fold(0.0, |total, v| total + v)
}

/// A child process that is killed when dropped, so a panic in the harness leaves no orphan.
struct Measured {
    child: Child,
    log: PathBuf,
}

impl Drop for Measured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Measured {
    fn spawn(mut command: Command, log: PathBuf) -> Measured {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        Measured { child, log }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// What one system cost to turn the backlog into RED metrics.
struct Measurement {
    /// From process start until the calls summed to the spans produced.
    wall: Duration,
    /// From process start until the first nonzero sum (group join, first fetch, first flush).
    first_calls: Duration,
    cpu: procstat::CpuSplit,
    peak_rss_mib: f64,
    /// The exposition at the moment the count was reached, for system-specific checks.
    exposition: String,
    /// (seconds since start, calls) of every scrape that answered: how steadily it drained.
    progress: Vec<(f64, f64)>,
    /// The longest a scrape took to answer: a process too busy to serve /metrics shows here.
    slowest_scrape: Duration,
}

impl Measurement {
    /// About one scrape per second of the run, as `seconds:calls` pairs, to show whether the
    /// drain was steady or stalled somewhere.
    fn progress_line(&self) -> String {
        let mut shown = Vec::new();
        let mut next_second = 0.0;
        for (i, (secs, calls)) in self.progress.iter().enumerate() {
            if *secs >= next_second || i + 1 == self.progress.len() {
                shown.push(format!("{secs:.1}s:{}k", (calls / 1000.0).round()));
                next_second = secs.floor() + 1.0;
            }
        }
        shown.join(" ")
    }
}

/// Scrapes `port` until the calls reach `spans`, then reads the process's CPU and peak RSS at
/// once, before anything else can add to them.
fn measure(
    process: &mut Measured,
    started: Instant,
    port: u16,
    spans: u64,
    a: &Args,
) -> Measurement {
    let pid = process.child.id().to_string();
    let mut first_calls = None;
    let mut last_sum = 0.0;
    let mut progress = Vec::new();
    let mut slowest_scrape = Duration::ZERO;
    loop {
        std::thread::sleep(a.scrape_every);
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!(
                "the process exited ({status}) before counting every span; its log:\n{}",
                process.log_tail()
            );
        }
        if started.elapsed() > a.timeout {
            panic!(
                "{last_sum} of {spans} spans counted after {:?}; the log:\n{}",
                a.timeout,
                process.log_tail()
            );
        }
        let asked = Instant::now();
        let Some(exposition) = scrape(port) else {
            continue;
        };
        slowest_scrape = slowest_scrape.max(asked.elapsed());
        last_sum = sum_of(&exposition, CALLS);
        progress.push((started.elapsed().as_secs_f64(), last_sum));
        if last_sum > 0.0 && first_calls.is_none() {
            first_calls = Some(started.elapsed());
        }
        if last_sum >= spans as f64 {
            let wall = started.elapsed();
            let cpu = procstat::cpu_split(&pid);
            let peak_rss_mib = procstat::peak_rss_mib(&pid);
            if last_sum > spans as f64 {
                println!("  note: {last_sum} calls counted, more than the {spans} spans produced");
            }
            return Measurement {
                wall,
                first_calls: first_calls.unwrap_or(wall),
                cpu,
                peak_rss_mib,
                exposition,
                progress,
                slowest_scrape,
            };
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn run_tracejoin(bootstrap: &str, t: &Topics, a: &Args, spans: u64, dir: &Path) -> Measurement {
    let bin = std::env::var("TRACEJOIN_BIN").expect("TRACEJOIN_BIN: the tracejoin binary");
    let port = free_port();
    let config = dir.join("tracejoin.yaml");
    // Only what the Collector's side also does: RED with the same dimensions. The service graph
    // is off (the Collector config has no servicegraph connector); the join still keeps every
    // span in its state, which is tracejoin's own cost and part of the figure.
    std::fs::write(
        &config,
        format!(
            r#"workers: {workers}
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: "span-compare-tracejoin-{group}"
  auto_offset_reset: earliest
  properties: {{{properties}}}
inputs:
  spans: {{topic: "{spans}", format: otlp_proto}}
  logs:
    - {{topic: "{logs}", format: auto}}
  partitioner: murmur2
  repartition: {repartition}
outputs:
  kafka: {{topic: "{out}"}}
  dead_letter: {{topic: "{dlq}"}}
metrics:
  listen: "127.0.0.1:{port}"
  red:
    span_kinds: [server]
    dimensions: [http.route, http.response.status_code]
    max_series: 100000
  service_graph:
    enabled: false
"#,
            workers = a.workers,
            properties = a
                .tracejoin_kafka_properties
                .iter()
                .map(|(k, v)| format!("{k}: \"{v}\""))
                .collect::<Vec<_>>()
                .join(", "),
            group = rand::random::<u32>(),
            spans = t.spans,
            logs = t.logs,
            repartition = a.repartition,
            out = t.out,
            dlq = t.dlq,
        ),
    )
    .expect("write the config");
    println!(
        "tracejoin: {bin} run --config {} (workers {}, repartition {}, extra kafka.properties {:?}), load average {}",
        config.display(),
        a.workers,
        a.repartition,
        a.tracejoin_kafka_properties,
        load_average()
    );
    let mut command = Command::new(&bin);
    command.arg("run").arg("--config").arg(&config);
    let started = Instant::now();
    let mut process = Measured::spawn(command, dir.join("tracejoin.log"));
    let m = measure(&mut process, started, port, spans, a);
    // What the join was holding and whether anything was refused or thrown away on the way:
    // context for the CPU and memory figures.
    let own: Vec<String> = [
        "tracejoin_join_state_traces",
        "tracejoin_join_state_bytes",
        "tracejoin_join_evicted_traces_total",
        "tracejoin_consumption_paused",
        "tracejoin_spans_invalid_total",
        "tracejoin_records_dead_lettered_total",
        "tracejoin_red_duplicate_spans_total",
        "tracejoin_red_overflow_spans_total",
    ]
    .iter()
    .map(|name| format!("{name}={}", sum_of(&m.exposition, name)))
    .collect();
    println!("  its own metrics then: {}", own.join(" "));
    let (traces, bytes) = (
        sum_of(&m.exposition, "tracejoin_join_state_traces"),
        sum_of(&m.exposition, "tracejoin_join_state_bytes"),
    );
    if traces > 0.0 {
        // The join's own accounting (what `join.max_state_bytes` bounds); the process's RSS,
        // in the table, is larger: allocator overhead, librdkafka's prefetched records.
        println!(
            "  join state: {:.0} bytes per open trace by its accounting ({traces} traces of {} spans)",
            bytes / traces,
            a.spans_per_record
        );
    }
    let mismatched = sum_of(&m.exposition, "tracejoin_partition_key_mismatch_total");
    if mismatched > 0.0 {
        println!(
            "  warning: {mismatched} records not where their key says (tracejoin_partition_key_mismatch_total)"
        );
    }
    m
}

fn run_collector(bootstrap: &str, t: &Topics, a: &Args, spans: u64, dir: &Path) -> Measurement {
    let bin = std::env::var("TRACEJOIN_COLLECTOR_BIN")
        .expect("TRACEJOIN_COLLECTOR_BIN: the Collector (scripts/collector.sh bin)");
    let port = free_port();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/collector/config.yaml");
    println!(
        "collector: {bin} --config={} (GOMAXPROCS unset: every core), load average {}",
        config.display(),
        load_average()
    );
    let mut command = Command::new(&bin);
    command
        .arg(format!("--config={}", config.display()))
        .env("TRACEJOIN_COLLECTOR_BROKERS", bootstrap)
        .env(
            "TRACEJOIN_COLLECTOR_GROUP",
            format!("span-compare-collector-{}", rand::random::<u32>()),
        )
        .env("TRACEJOIN_COLLECTOR_TOPIC", &t.spans)
        .env("TRACEJOIN_COLLECTOR_PROM_PORT", port.to_string())
        .env("TRACEJOIN_COLLECTOR_CARDINALITY_LIMIT", "100000");
    let started = Instant::now();
    let mut process = Measured::spawn(command, dir.join("otelcol.log"));
    measure(&mut process, started, port, spans, a)
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn print_header(a: &Args) {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let command = std::env::var("SPAN_COMPARE_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    println!("# span-compare");
    println!("date:      {}", command_output("date", &["-u", "+%FT%TZ"]));
    println!("command:   {command}");
    println!(
        "commit:    {} ({})",
        command_output("git", &["describe", "--always", "--dirty", "--tags"]),
        command_output("git", &["rev-parse", "HEAD"])
    );
    println!(
        "machine:   nproc {}, {cpu_model}, {} clock ticks/s",
        command_output("nproc", &[]),
        procstat::clock_ticks()
    );
    if let Ok(before_build) = std::env::var("SPAN_COMPARE_LOAD_BEFORE_BUILD") {
        println!("load:      {before_build} before the build (1, 5, 15 min); {} now, after it and the broker's start", load_average());
    } else {
        println!("load:      {} (1, 5, 15 min)", load_average());
    }
    println!(
        "setup:     one Kafka broker on this machine (it serves both runs and shares the cores); scraped every {} ms",
        a.scrape_every.as_millis()
    );
}

/// The table's figures of one run, or their medians over several.
#[derive(Debug, Clone, Copy)]
struct Row {
    cpu: f64,
    pipeline: f64,
    librdkafka: f64,
    exited: f64,
    wall: f64,
    rss_mib: f64,
}

impl Row {
    fn of(m: &Measurement) -> Row {
        Row {
            cpu: m.cpu.total,
            pipeline: m.cpu.other,
            librdkafka: m.cpu.librdkafka,
            exited: m.cpu.exited(),
            wall: m.wall.as_secs_f64(),
            rss_mib: m.peak_rss_mib,
        }
    }

    /// Each column's median on its own: one slow round moves none of them.
    fn median(rows: &[Row]) -> Row {
        let median = |column: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rows.iter().map(column).collect();
            v.sort_by(f64::total_cmp);
            let mid = v.len() / 2;
            if v.len() % 2 == 0 {
                (v[mid - 1] + v[mid]) / 2.0
            } else {
                v[mid]
            }
        };
        Row {
            cpu: median(|r| r.cpu),
            pipeline: median(|r| r.pipeline),
            librdkafka: median(|r| r.librdkafka),
            exited: median(|r| r.exited),
            wall: median(|r| r.wall),
            rss_mib: median(|r| r.rss_mib),
        }
    }

    fn print(&self, name: &str, spans: u64, split: bool) {
        let part = |v: f64| {
            if split {
                format!("{v:.2}")
            } else {
                "-".into()
            }
        };
        println!(
            "{:<14} {:>8.2} {:>9} {:>11} {:>8} {:>14.0} {:>8.2} {:>9.0} {:>9.1}",
            name,
            self.cpu,
            part(self.pipeline),
            part(self.librdkafka),
            part(self.exited),
            spans as f64 / self.cpu,
            self.wall,
            spans as f64 / self.wall,
            self.rss_mib
        );
    }
}

fn print_table(spans: u64, tracejoin: &[Measurement], collector: &[Measurement]) {
    let rounds = tracejoin.len().max(collector.len());
    let label = |system: &str, round: usize| {
        if rounds > 1 {
            format!("{system} #{}", round + 1)
        } else {
            system.to_string()
        }
    };
    println!();
    println!(
        "{:<14} {:>8} {:>9} {:>11} {:>8} {:>14} {:>8} {:>9} {:>9}",
        "system",
        "CPU s",
        "pipeline",
        "librdkafka",
        "exited",
        "spans/CPU-s",
        "wall s",
        "spans/s",
        "RSS MiB"
    );
    let tracejoin_rows: Vec<Row> = tracejoin.iter().map(Row::of).collect();
    let collector_rows: Vec<Row> = collector.iter().map(Row::of).collect();
    for (round, row) in tracejoin_rows.iter().enumerate() {
        row.print(&label("tracejoin", round), spans, true);
    }
    for (round, row) in collector_rows.iter().enumerate() {
        row.print(&label("collector", round), spans, false);
    }
    if rounds > 1 {
        if !tracejoin_rows.is_empty() {
            Row::median(&tracejoin_rows).print("tracejoin med", spans, true);
        }
        if !collector_rows.is_empty() {
            Row::median(&collector_rows).print("collector med", spans, false);
        }
    }
    println!();
    if !tracejoin_rows.is_empty() && !collector_rows.is_empty() {
        let per_round: Vec<String> = tracejoin_rows
            .iter()
            .zip(&collector_rows)
            .map(|(t, c)| format!("{:.2}", c.cpu / t.cpu))
            .collect();
        let (t, c) = (Row::median(&tracejoin_rows), Row::median(&collector_rows));
        if rounds > 1 {
            println!(
                "ratio tracejoin/collector, spans per CPU-second: {:.2} (of the medians; by round {})",
                c.cpu / t.cpu,
                per_round.join(" ")
            );
        } else {
            println!(
                "ratio tracejoin/collector, spans per CPU-second: {:.2}",
                c.cpu / t.cpu
            );
        }
    }
    for (round, m) in tracejoin.iter().enumerate() {
        let name = label("tracejoin", round);
        println!(
            "{name}: first calls after {:.2} s; threads (CPU s): {}",
            m.first_calls.as_secs_f64(),
            m.cpu.by_name_line()
        );
        println!(
            "{name}: calls by time: {}; slowest /metrics answer {:.2} s",
            m.progress_line(),
            m.slowest_scrape.as_secs_f64()
        );
    }
    for (round, m) in collector.iter().enumerate() {
        let name = label("collector", round);
        println!(
            "{name}: first calls after {:.2} s",
            m.first_calls.as_secs_f64()
        );
        println!(
            "{name}: calls by time: {}; slowest /metrics answer {:.2} s",
            m.progress_line(),
            m.slowest_scrape.as_secs_f64()
        );
    }
    println!(
        "notes: wall is from process start (so it includes start-up and the consumer group join) to the scrape that saw \
every span counted; CPU is utime+stime of the process (/proc/PID/stat) read right after that scrape, peak RSS its \
VmHWM. tracejoin's pipeline = its threads not named rdk:* (tokio workers, main, and the rdkafka crate's \
\"producer polling thread\", which runs the output producer's delivery callbacks), librdkafka = the rdk:* threads, \
exited = threads gone by then. The Collector flushes its span metrics every 1 s, so its wall includes up to 1 s of \
flush granularity (its CPU does not grow while it waits). The scrapes themselves cost both processes a little. \
tracejoin's RSS includes its join state (the spans it keeps for logs that may come: up to join.max_traces traces and \
join.max_state_bytes, see its own metrics above); the Collector keeps no spans."
    );
}

fn main() {
    let bootstrap = std::env::var("TRACEJOIN_KAFKA_BOOTSTRAP")
        .expect("TRACEJOIN_KAFKA_BOOTSTRAP (scripts/span-compare.sh sets it)");
    let a = args();
    print_header(&a);
    let topics = create_topics(&bootstrap, a.partitions);
    produce(&bootstrap, &a, &topics.spans);
    let dir = tempfile::tempdir().expect("temp dir");
    // One after the other, never together: each has the machine (but for the broker) to itself.
    // Rounds alternate the two, so a slow spell of the machine does not fall on one side only.
    let (mut tracejoin, mut collector) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds {
        if a.only != Only::Collector {
            tracejoin.push(run_tracejoin(&bootstrap, &topics, &a, a.spans, dir.path()));
        }
        if a.only != Only::Tracejoin {
            collector.push(run_collector(&bootstrap, &topics, &a, a.spans, dir.path()));
        }
    }
    print_table(a.spans, &tracejoin, &collector);
}
