//! Everything the processor reports about itself, named once.
//!
//! Call sites use the methods of [`Metrics`] (`metrics().logs_emitted(outcome, reason, n)`), never
//! a metric name. Labels come from small fixed sets (outcomes, reasons, error codes, topic
//! names from the config), never from record content, so cardinality is bounded by the config.
//! The hot path counts per batch where it can.

pub mod auth;
pub mod openmetrics;
pub mod proto;
pub mod server;

use crate::model::{EmitReason, JoinOutcome};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// The processor's own metrics (see the module docs). One per process.
pub struct Metrics {
    registry: Registry,
    records_consumed: IntCounterVec,
    logs_emitted: IntCounterVec,
    spans_decoded: IntCounter,
    spans_invalid: IntCounter,
    spans_duplicate: IntCounter,
    dead_lettered: IntCounterVec,
    records_produced: IntCounterVec,
    produce_retries: IntCounterVec,
    kafka_connect_failures: IntCounterVec,
    join_traces: IntGaugeVec,
    join_bytes: IntGaugeVec,
    join_waiting_logs: IntGaugeVec,
    join_evicted: IntCounter,
    watermark_lag: GaugeVec,
    timestamps_adjusted: IntCounterVec,
    commits: IntCounter,
    commit_failures: IntCounter,
    committed_offset: IntGaugeVec,
    in_flight: IntGaugeVec,
    paused: IntGaugeVec,
    end_to_end_latency: Histogram,
    partition_key_mismatch: IntCounterVec,
    red_series: IntGauge,
    red_duplicates: IntCounter,
    red_overflowed: IntCounter,
    red_restored_replays: IntCounter,
    rekeyed_copies: IntCounter,
    consumer_lag: IntGaugeVec,
    rebalance_partitions: IntCounterVec,
    spans_counted_before: IntCounter,
    repartition_active: IntGaugeVec,
    partition_key_unchecked: IntCounterVec,
    rekeyed: IntCounterVec,
    progress_marks: IntCounterVec,
    loki_entries: IntCounterVec,
    loki_bytes: IntCounterVec,
    loki_batches: IntCounterVec,
    loki_retries: IntCounterVec,
    loki_request_duration: Histogram,
    loki_batches_in_flight: IntGauge,
    loki_batches_failing: IntGauge,
    slo_pending: IntGauge,
    slo_orphan_logs: IntGauge,
    slo_bytes: IntGauge,
    slo_forced: IntCounter,
    slo_too_old: IntCounter,
    slo_duplicates: IntCounter,
    slo_restored_replays: IntCounter,
    service_graph_waiting: IntGaugeVec,
    service_graph_edges: IntCounter,
    service_graph_expired: IntCounter,
    slo_state_writes: IntCounterVec,
    slo_state_bytes: IntCounter,
    slo_state_restores: IntCounterVec,
    slo_overflowed: IntCounterVec,
    slo_attribution_events: IntCounter,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

/// The per-worker gauges (state size, watermark, in flight): one worker's handles.
pub struct WorkerMetrics {
    join_traces: IntGauge,
    join_bytes: IntGauge,
    join_waiting_logs: IntGauge,
    watermark_lag: Gauge,
    in_flight: IntGauge,
    paused: IntGauge,
}

impl WorkerMetrics {
    /// The join's state size.
    pub fn join_state(&self, traces: usize, bytes: usize, waiting_logs: usize) {
        self.join_traces.set(traces as i64);
        self.join_bytes.set(bytes as i64);
        self.join_waiting_logs.set(waiting_logs as i64);
    }
    /// Wall clock minus watermark.
    pub fn watermark_lag(&self, seconds: f64) {
        self.watermark_lag.set(seconds);
    }
    /// Entries waiting for acknowledgement, and whether consumption is paused.
    pub fn in_flight(&self, n: usize, paused: bool) {
        self.in_flight.set(n as i64);
        self.paused.set(i64::from(paused));
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let logs_emitted = counter_vec(
            &r,
            "tracejoin_logs_total",
            "Logs that left the join, by outcome and by why they left when they did.",
            &["outcome", "reason"],
        );
        for o in JoinOutcome::ALL {
            logs_emitted.with_label_values(&[o.as_str(), "window_closed"]);
        }
        let watermark_lag = GaugeVec::new(
            Opts::new(
                "tracejoin_watermark_lag_seconds",
                "Wall clock minus the join's watermark: how far event time trails real time, by worker.",
            ),
            &["worker"],
        )
        .expect("valid metric");
        r.register(Box::new(watermark_lag.clone()))
            .expect("unique metric");
        let end_to_end_latency = Histogram::with_opts(
            HistogramOpts::new(
                "tracejoin_end_to_end_latency_seconds",
                "From a log's event time to the Kafka sink's acknowledgement of its enriched form.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(end_to_end_latency.clone()))
            .expect("unique metric");
        Metrics {
            records_consumed: counter_vec(&r, "tracejoin_records_consumed_total", "Kafka records consumed, by topic.", &["topic"]),
            logs_emitted,
            spans_decoded: counter(&r, "tracejoin_spans_total", "Spans decoded from the spans topic."),
            spans_invalid: counter(&r, "tracejoin_spans_invalid_total", "Spans skipped for an invalid (empty or all-zero) trace or span id."),
            spans_duplicate: counter(&r, "tracejoin_spans_duplicate_total", "Spans delivered again while the first copy was still held (at-least-once input)."),
            dead_lettered: counter_vec(&r, "tracejoin_records_dead_lettered_total", "Records sent to the dead-letter topic, by source topic and reason code.", &["topic", "reason"]),
            records_produced: counter_vec(&r, "tracejoin_records_produced_total", "Records acknowledged by Kafka, by output topic.", &["topic"]),
            produce_retries: counter_vec(&r, "tracejoin_produce_retries_total", "Deliveries that failed after librdkafka's own retries and were sent again.", &["topic"]),
            kafka_connect_failures: counter_vec(&r, "tracejoin_kafka_connect_failures_total", "Connection attempts the cluster refused, by cause (authentication, untrusted_broker_certificate, client_certificate_refused, tls, config): the start-up checks, and the running consumers' reconnections.", &["cause"]),
            join_traces: gauge_vec(&r, "tracejoin_join_state_traces", "Open traces held by the join, by worker.", &["worker"]),
            join_bytes: gauge_vec(&r, "tracejoin_join_state_bytes", "Approximate bytes of join state, by worker.", &["worker"]),
            join_waiting_logs: gauge_vec(&r, "tracejoin_join_waiting_logs", "Logs waiting for their span, by worker.", &["worker"]),
            join_evicted: counter(&r, "tracejoin_join_evicted_traces_total", "Traces evicted to keep the join state within its bounds."),
            watermark_lag,
            timestamps_adjusted: counter_vec(&r, "tracejoin_timestamps_adjusted_total", "Records whose event time was not their own, by what was used instead.", &["source"]),
            commits: counter(&r, "tracejoin_offset_commits_total", "Offset commits sent."),
            commit_failures: counter(&r, "tracejoin_offset_commit_failures_total", "Offset commits that failed (retried at the next interval)."),
            committed_offset: {
                let g = IntGaugeVec::new(Opts::new("tracejoin_committed_offset", "Last offset committed, by topic and partition."), &["topic", "partition"]).expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            in_flight: gauge_vec(&r, "tracejoin_records_in_flight", "Output entries waiting for a sink's acknowledgement, by worker.", &["worker"]),
            paused: gauge_vec(&r, "tracejoin_consumption_paused", "1 while a worker's consumption is paused because sinks are behind (backpressure).", &["worker"]),
            end_to_end_latency,
            partition_key_unchecked: counter_vec(&r, "tracejoin_partition_key_unchecked_total", "Unkeyed records on a multi-partition topic joined without repartitioning: their co-partitioning cannot be checked, by topic.", &["topic"]),
            repartition_active: gauge_vec(&r, "tracejoin_repartition_active", "1 when an input topic's records are re-keyed by trace id into the internal topics (inputs.repartition), by topic.", &["topic"]),
            rekeyed: counter_vec(&r, "tracejoin_repartition_records_total", "Records produced to the internal repartition topics, by source topic.", &["topic"]),
            progress_marks: counter_vec(&r, "tracejoin_repartition_progress_marks_total", "Progress marks: written to the internal topics by the re-keying owners (`sent`), read by the join tasks (`read`).", &["direction"]),
            spans_counted_before: counter(&r, "tracejoin_spans_counted_before_total", "Spans replayed from below an earlier owner's committed seen mark (after a restart or a rebalance): joined again, not counted again in RED or SLO."),
            rebalance_partitions: counter_vec(&r, "tracejoin_rebalance_partitions_total", "Partitions assigned to or revoked from this process's consumers in rebalances, by change (assigned, revoked). Under the classic protocol every member's partitions are revoked at each rebalance; under the consumer protocol only those that move.", &["change"]),
            partition_key_mismatch: counter_vec(&r, "tracejoin_partition_key_mismatch_total", "Keyed records whose key does not hash to their partition under the configured partitioner (topics not co-partitioned).", &["topic"]),
            consumer_lag: {
                let g = IntGaugeVec::new(
                    Opts::new("tracejoin_consumer_lag_records", "Records between the consumer's position and the partition's end, by topic and partition (from librdkafka's statistics, every 5 s)."),
                    &["topic", "partition"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            loki_entries: counter_vec(&r, "tracejoin_loki_entries_total", "Log entries pushed to Loki, by result (delivered, rejected).", &["result"]),
            loki_bytes: counter_vec(&r, "tracejoin_loki_bytes_total", "Bytes of delivered Loki pushes, before (uncompressed) and after (wire) compression.", &["encoding"]),
            loki_batches: counter_vec(&r, "tracejoin_loki_batches_total", "Loki push batches by result: delivered, or the rejection cause (dead-lettered).", &["result"]),
            loki_retries: counter_vec(&r, "tracejoin_loki_retries_total", "Loki push attempts retried, by cause (rate_limited, server_error, connection); counted as each retry is decided.", &["cause"]),
            slo_pending: gauge(&r, "tracejoin_slo_pending_bad_events", "SLO bad events waiting for their trace's logs to name a cause."),
            slo_orphan_logs: gauge(&r, "tracejoin_slo_orphan_logs", "Error logs kept for a bad span of their trace not seen yet."),
            slo_bytes: gauge(&r, "tracejoin_slo_state_bytes", "Approximate bytes held by the SLO rings and label tables."),
            slo_forced: counter(&r, "tracejoin_slo_forced_finalisations_total", "SLO bad events finalised before their logs could arrive because slo attribution.max_pending was reached."),
            slo_too_old: counter(&r, "tracejoin_slo_too_old_events_total", "SLO events older than every window reaches (counted in tracejoin_slo_events_total only)."),
            slo_duplicates: counter(&r, "tracejoin_slo_duplicate_spans_total", "Spans not counted in the SLOs because they were counted recently (redeliveries)."),
            service_graph_waiting: gauge_vec(&r, "tracejoin_service_graph_waiting_spans", "Client or server spans waiting in a worker's store for the other half of their edge.", &["worker"]),
            service_graph_edges: counter(&r, "tracejoin_service_graph_edges_total", "Service graph edges completed (virtual-node edges included)."),
            service_graph_expired: counter(&r, "tracejoin_service_graph_expired_spans_total", "Client or server spans whose other half did not come within store.ttl."),
            slo_restored_replays: counter(&r, "tracejoin_slo_restored_replay_spans_total", "Spans of replayed records not counted in the SLOs because the partition's restored state (or an earlier owner's commit) holds them already."),
            slo_state_writes: counter_vec(&r, "tracejoin_slo_state_writes_total", "Partition SLO states written to the changelog topic, by result (ok, failed).", &["result"]),
            slo_state_bytes: counter(&r, "tracejoin_slo_state_written_bytes_total", "Bytes of partition SLO states written to the changelog topic (before compression)."),
            slo_state_restores: counter_vec(&r, "tracejoin_slo_state_restores_total", "Partitions assigned whose SLO state was looked for in the changelog, by outcome (restored, empty, failed).", &["outcome"]),
            slo_overflowed: counter_vec(&r, "tracejoin_slo_overflowed_total", "SLO events whose operation or cause was folded into `other` by its cap.", &["label"]),
            slo_attribution_events: counter(&r, "tracejoin_slo_attribution_events_total", "Attribution events produced (burn-rate thresholds crossed upward)."),
            loki_batches_in_flight: gauge(&r, "tracejoin_loki_batches_in_flight", "Loki batches being sent now (attempts and backoff)."),
            loki_batches_failing: gauge(&r, "tracejoin_loki_batches_failing", "Loki batches whose last attempt failed and that are still being retried: above 0, Loki is failing now."),
            loki_request_duration: {
                let h = Histogram::with_opts(
                    HistogramOpts::new("tracejoin_loki_request_duration_seconds", "Duration of one Loki push request (every attempt).")
                        .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            red_series: gauge(&r, "tracejoin_red_series", "Series each RED metric holds (the overflow series included)."),
            red_duplicates: counter(&r, "tracejoin_red_duplicate_spans_total", "Spans not counted in the RED metrics because the same trace and span id was counted recently (redeliveries)."),
            rekeyed_copies: counter(&r, "tracejoin_repartition_copies_spans_total", "Spans of re-keyed records known for copies of records counted already (the re-keying stage replayed its input after a crash or a rebalance): joined, not counted again in the derived signals (with the state changelog)."),
            red_restored_replays: counter(&r, "tracejoin_red_restored_replay_spans_total", "Spans of replayed records not counted in the RED metrics because the partition's restored state holds them (metrics.red.per_partition)."),
            red_overflowed: counter(&r, "tracejoin_red_overflow_spans_total", "Spans counted in the RED overflow series (otel_metric_overflow=\"true\") because the series cap was reached."),
            registry: r,
        }
    }

    /// The registry, for the endpoint and for registering derived metrics beside these.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// A handle for counting records consumed from `topic` without a label lookup.
    pub fn records_consumed_handle(&self, topic: &str) -> IntCounter {
        self.records_consumed.with_label_values(&[topic])
    }
    /// `n` logs left the join.
    pub fn logs_emitted(&self, outcome: JoinOutcome, reason: EmitReason, n: u64) {
        self.logs_emitted
            .with_label_values(&[outcome.as_str(), reason.as_str()])
            .inc_by(n);
    }
    /// Spans decoded, skipped for bad ids, and duplicates.
    pub fn spans(&self, decoded: u64, invalid: u64, duplicate: u64) {
        self.spans_decoded.inc_by(decoded);
        self.spans_invalid.inc_by(invalid);
        self.spans_duplicate.inc_by(duplicate);
    }
    /// A record was dead-lettered.
    pub fn dead_lettered(&self, source_topic: &str, reason: &str) {
        self.dead_lettered
            .with_label_values(&[source_topic, reason])
            .inc();
    }
    /// A record was acknowledged by Kafka.
    pub fn produced(&self, topic: &str) {
        self.records_produced.with_label_values(&[topic]).inc();
    }
    /// A delivery failed and is being retried.
    pub fn produce_retry(&self, topic: &str) {
        self.produce_retries.with_label_values(&[topic]).inc();
    }
    /// The start-up connection check failed for `cause` (a fixed name, see
    /// `sources::connect::ConnectError::cause`).
    pub fn kafka_connect_failed(&self, cause: &str) {
        self.kafka_connect_failures
            .with_label_values(&[cause])
            .inc();
    }
    /// The gauges of one worker, resolved once.
    pub fn worker(&self, index: usize) -> WorkerMetrics {
        let w = index.to_string();
        let w = [w.as_str()];
        WorkerMetrics {
            join_traces: self.join_traces.with_label_values(&w),
            join_bytes: self.join_bytes.with_label_values(&w),
            join_waiting_logs: self.join_waiting_logs.with_label_values(&w),
            watermark_lag: self.watermark_lag.with_label_values(&w),
            in_flight: self.in_flight.with_label_values(&w),
            paused: self.paused.with_label_values(&w),
        }
    }
    /// Traces evicted.
    pub fn join_evicted(&self, n: u64) {
        self.join_evicted.inc_by(n);
    }
    /// A record's event time was replaced (`kafka`: none found; `clamped_future`: too far ahead).
    pub fn timestamp_adjusted(&self, source: &str, n: u64) {
        self.timestamps_adjusted
            .with_label_values(&[source])
            .inc_by(n);
    }
    /// An offset commit was sent (or failed).
    pub fn commit(&self, ok: bool) {
        if ok {
            self.commits.inc()
        } else {
            self.commit_failures.inc()
        }
    }
    /// The offset committed for a partition.
    pub fn committed_offset(&self, topic: &str, partition: i32, offset: i64) {
        self.committed_offset
            .with_label_values(&[topic, &partition.to_string()])
            .set(offset);
    }
    /// A log's end-to-end latency.
    pub fn end_to_end_latency(&self, seconds: f64) {
        self.end_to_end_latency.observe(seconds);
    }
    /// Consumer lag of a partition.
    pub fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag
            .with_label_values(&[topic, &partition.to_string()])
            .set(lag);
    }

    /// A Loki batch finished: delivered or rejected.
    pub fn loki_batch(&self, outcome: &crate::sinks::loki::BatchOutcome) {
        use crate::sinks::loki::BatchOutcome;
        let stats = outcome.stats();
        match outcome {
            BatchOutcome::Delivered { entries, bytes, .. } => {
                self.loki_entries
                    .with_label_values(&["delivered"])
                    .inc_by(*entries as u64);
                self.loki_bytes
                    .with_label_values(&["uncompressed"])
                    .inc_by(*bytes as u64);
                self.loki_bytes
                    .with_label_values(&["wire"])
                    .inc_by(stats.wire_bytes as u64);
                self.loki_batches.with_label_values(&["delivered"]).inc();
            }
            BatchOutcome::Rejected { origins, cause, .. } => {
                self.loki_entries
                    .with_label_values(&["rejected"])
                    .inc_by(origins.len() as u64);
                self.loki_batches.with_label_values(&[cause.as_str()]).inc();
            }
        }
    }

    /// The SLO engine's own counts (`SloStats`), mirrored: gauges set, counters moved up to the
    /// engine's cumulative values.
    pub fn slo_stats(&self, s: &crate::derive::slo::SloStats) {
        fn mirror(c: &IntCounter, v: u64) {
            c.inc_by(v.saturating_sub(c.get()));
        }
        self.slo_pending.set(s.pending as i64);
        self.slo_orphan_logs.set(s.orphan_logs as i64);
        self.slo_bytes.set(s.bytes as i64);
        mirror(&self.slo_forced, s.forced_finalisations);
        mirror(&self.slo_too_old, s.too_old);
        mirror(&self.slo_duplicates, s.duplicates);
        mirror(&self.slo_restored_replays, s.restored_replays);
        mirror(&self.slo_attribution_events, s.attribution_events);
        mirror(
            &self.slo_overflowed.with_label_values(&["operation"]),
            s.operations_overflowed,
        );
        mirror(
            &self.slo_overflowed.with_label_values(&["cause"]),
            s.causes_overflowed,
        );
    }

    /// A worker's service graph since its last report: halves waiting now, edges completed and
    /// halves expired since.
    pub fn service_graph(&self, worker: usize, waiting: usize, edges: u64, expired: u64) {
        self.service_graph_waiting
            .with_label_values(&[&worker.to_string()])
            .set(waiting as i64);
        self.service_graph_edges.inc_by(edges);
        self.service_graph_expired.inc_by(expired);
    }

    /// A partition's SLO state was written to the changelog (`ok`) or could not be.
    pub fn slo_state_written(&self, ok: bool, bytes: usize) {
        self.slo_state_writes
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
        if ok {
            self.slo_state_bytes.inc_by(bytes as u64);
        }
    }

    /// A partition's SLO state was looked for on assignment: `restored`, `empty` or `failed`.
    pub fn slo_state_restore(&self, outcome: &'static str) {
        self.slo_state_restores.with_label_values(&[outcome]).inc();
    }

    /// One Loki push attempt ended after `took`.
    pub fn loki_attempt(&self, took: std::time::Duration) {
        self.loki_request_duration.observe(took.as_secs_f64());
    }
    /// A Loki push is retried, for `cause`.
    pub fn loki_retry(&self, cause: &str) {
        self.loki_retries.with_label_values(&[cause]).inc();
    }
    /// Loki batches being sent now.
    pub fn loki_batches_in_flight(&self) -> &IntGauge {
        &self.loki_batches_in_flight
    }
    /// Loki batches failing now.
    pub fn loki_batches_failing(&self) -> &IntGauge {
        &self.loki_batches_failing
    }

    /// RED metrics: spans skipped as redeliveries and spans folded into the overflow series.
    /// Spans of a re-keyed record that is a copy of one counted already.
    pub fn rekeyed_copies(&self, n: u64) {
        self.rekeyed_copies.inc_by(n);
    }
    /// RED metrics: what one record's spans did.
    pub fn red_observed(&self, duplicates: u64, overflowed: u64, restored_replays: u64) {
        self.red_duplicates.inc_by(duplicates);
        self.red_overflowed.inc_by(overflowed);
        self.red_restored_replays.inc_by(restored_replays);
    }
    /// RED metrics: series held per metric.
    pub fn red_series(&self, n: usize) {
        self.red_series.set(n as i64);
    }
    /// An unkeyed record on a multi-partition topic joined directly.
    pub fn partition_key_unchecked(&self, topic: &str) {
        self.partition_key_unchecked
            .with_label_values(&[topic])
            .inc();
    }
    /// Whether an input topic goes through the repartition stage.
    pub fn repartition_active(&self, topic: &str, on: bool) {
        self.repartition_active
            .with_label_values(&[topic])
            .set(i64::from(on));
    }
    /// Records re-keyed from an input topic.
    pub fn rekeyed(&self, topic: &str, n: u64) {
        self.rekeyed.with_label_values(&[topic]).inc_by(n);
    }
    /// Progress marks written (`sent`) or read (`read`).
    pub fn progress_marks(&self, direction: &str, n: u64) {
        self.progress_marks
            .with_label_values(&[direction])
            .inc_by(n);
    }
    /// Replayed spans an earlier owner had counted.
    pub fn spans_counted_before(&self, n: u64) {
        self.spans_counted_before.inc_by(n);
    }
    /// Partitions assigned (`assigned`) or revoked (`revoked`) in a rebalance.
    pub fn rebalanced(&self, change: &str, partitions: usize) {
        self.rebalance_partitions
            .with_label_values(&[change])
            .inc_by(partitions as u64);
    }
    /// A partition left this consumer: its lag and committed-offset series go with it, so that
    /// a dashboard summing lag over the fleet counts each partition at its one owner.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let labels = [topic, &partition.to_string()];
        let _ = self.consumer_lag.remove_label_values(&labels);
        let _ = self.committed_offset.remove_label_values(&labels);
    }
    /// A keyed record on another partition than its key says.
    pub fn partition_key_mismatch(&self, topic: &str) {
        self.partition_key_mismatch
            .with_label_values(&[topic])
            .inc();
    }
}

/// `tracejoin_log_ids_rejected_total{rule}`: ids an extraction rule captured that were not well
/// formed (or only a piece of a longer token), so yielded nothing. Label: the text rule's name,
/// or `field:<path>` for a field rule (both from the rules file). Registered with the other
/// metrics on first use.
static LOG_IDS_REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        metrics().registry(),
        "tracejoin_log_ids_rejected_total",
        "Trace or span ids an extraction rule captured that were not well-formed ids of their kind (so yielded nothing), by rule.",
        &["rule"],
    )
});

impl Metrics {
    /// An extraction rule captured something that is not a well-formed id.
    pub fn log_id_rejected(&self, rule: &str) {
        LOG_IDS_REJECTED.with_label_values(&[rule]).inc();
    }
}

/// A Loki batch's first failed attempt (it is retried): the reason, with a TLS failure named in
/// the operator's terms (`TLS: the server's certificate is not signed by a trusted CA …`). Once
/// per failing batch, not per attempt; `tracejoin_loki_batches_failing` says how long it lasts.
pub fn loki_push_failing(reason: &str) {
    tracing::warn!(%reason, "loki push failed; retrying (the batch's offsets stay uncommitted)");
}

/// `outputs.loki.tls.insecure_skip_verify` is on.
pub fn loki_tls_verification_off() {
    tracing::warn!(
        "outputs.loki.tls.insecure_skip_verify is on: the server's certificate is not verified"
    );
}

/// A connection to the HTTPS `/metrics` endpoint failed its TLS handshake (a plain-HTTP client,
/// an untrusted or missing client certificate). Debug level: anyone on the network can cause it.
pub fn metrics_tls_handshake_failed(peer: std::net::SocketAddr, error: &std::io::Error) {
    tracing::debug!(%peer, %error, "/metrics: TLS handshake failed");
}

/// The cluster refused a running consumer's connection attempt (after start-up): counted by
/// cause in `tracejoin_kafka_connect_failures_total` at every report; logged at error level when
/// the worker turns not ready (`first`), at debug level for the repeats (librdkafka reconnects
/// every second).
pub fn kafka_refused_while_running(
    worker: usize,
    refusal: &crate::sources::connect::ConnectError,
    first: bool,
) {
    metrics().kafka_connect_failed(refusal.cause());
    if first {
        tracing::error!(worker, cause = refusal.cause(), error = %refusal, "kafka refuses the running consumer: not ready until it accepts it again");
    } else {
        tracing::debug!(worker, cause = refusal.cause(), error = %refusal, "kafka still refuses the running consumer");
    }
}

/// A worker's consumer the cluster had refused is connected again.
pub fn kafka_accepted_again(worker: usize) {
    tracing::info!(worker, "kafka accepts the running consumer again");
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_documented_names() {
        let m = metrics();
        m.logs_emitted(JoinOutcome::MatchedSpan, EmitReason::SpanPresent, 2);
        m.dead_lettered("otlp_spans", "invalid_protobuf");
        m.worker(7).join_state(3, 100, 1);
        let text = m.render();
        for name in [
            "tracejoin_logs_total{outcome=\"matched_span\",reason=\"span_present\"}",
            "tracejoin_records_dead_lettered_total{reason=\"invalid_protobuf\",topic=\"otlp_spans\"}",
            "tracejoin_spans_total",
            "tracejoin_join_state_traces{worker=\"7\"} 3",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
}
