#!/usr/bin/env python3
"""Input of the end-to-end test: real OpenTelemetry SDK telemetry, produced to Kafka.

Spans and logs are made by the OpenTelemetry Python SDK exactly as an instrumented service
would make them, then encoded with the same OTLP protobuf encoders the SDK's OTLP exporters
use, and produced the way the Collector's kafkaexporter lays them out: one
ExportTraceServiceRequest per trace keyed by the hex trace id (partition_traces_by_id).
Beside the OTLP logs, the same logs topic gets JSON lines, as a log shipper scraping a
service's stdout would send them.

Each log carries a unique token "log_id=L0001" in its message; the manifest (one JSON object
per log) says what tracejoin is expected to decide for it.

    produce.py --bootstrap HOST:PORT --spans-topic S --logs-topic L --manifest OUT.jsonl
               [--traces N] [--seed N] [--unkeyed] [--batch N]

--unkeyed --batch N lays the records out as the Collector's Kafka exporter does at its default
settings: no keys, and the spans of N traces batched into one ExportTraceServiceRequest (the
batch processor's doing), so a record holds many traces and says nothing of where they belong.

--otlp-endpoint URL sends the spans and the OTLP logs to a Collector's OTLP/HTTP receiver
instead (POST /v1/traces, /v1/logs, protobuf, as the SDK's OTLP exporters do), N traces per
request; the Collector's Kafka exporter writes them to the topics. JSON lines still go straight
to the logs topic, as a log shipper would send them.

The scenario mix is a function of --seed; trace and span ids are not (the SDK draws them),
so that two runs against the same broker never share a trace.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import random
import sys
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    format_span_id,
    format_trace_id,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SERVICES = ("frontend", "checkout", "payments", "inventory")
PARTITIONS = 3

# What a trace's spans become, which decides the outcome of every log inside it.
EXPORTED = "exported"  # all spans produced: logs are matched_span
PARTIAL = "partial"    # spans produced, but some logs sit in a span that never is: matched_trace
DROPPED = "dropped"    # no span of the trace is ever produced: unmatched

PROPAGATOR = TraceContextTextMapPropagator()


class PaymentDeclined(Exception):
    pass


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, as a service logging JSON to stdout would write it.

    The trace context is read from the active span at format time, which is emit time:
    logging handlers run synchronously in the caller's thread and context.
    """

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict = {}
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            doc["trace_id"] = format_trace_id(ctx.trace_id)
            doc["span_id"] = format_span_id(ctx.span_id)
        doc["timestamp"] = self._timestamp(record)
        doc["level"] = record.levelname
        doc["message"] = record.getMessage()
        doc["service"] = self.service
        doc["logger"] = record.name
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))

    @staticmethod
    def _timestamp(record: logging.LogRecord):
        # Real pipelines disagree on the shape of a timestamp; the caller picks one per record
        # (extra={"ts_shape": ...}) so tracejoin sees all of them.
        shape = getattr(record, "ts_shape", "rfc3339")
        if shape == "epoch_millis":
            return int(record.created * 1000)
        when = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
        spec = "milliseconds" if shape == "rfc3339_millis" else "microseconds"
        return when.isoformat(timespec=spec).replace("+00:00", "Z")


class LineCollector(logging.Handler):
    """Keeps formatted lines in memory; they are produced to Kafka once the trace is done."""

    def __init__(self, formatter: logging.Formatter):
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def drain(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


@dataclass
class Service:
    name: str
    tracer: trace.Tracer        # its spans reach the span exporter
    ghost_tracer: trace.Tracer  # same service, a provider with no processor: spans never exported
    otlp_logger: logging.Logger
    json_logger: logging.Logger


class Telemetry:
    """The SDK set up as four separately instrumented services sharing in-memory exporters."""

    def __init__(self):
        self.span_exporter = InMemorySpanExporter()
        self.log_exporter = InMemoryLogRecordExporter()
        self.services: dict[str, Service] = {}
        self.providers: list = []
        self.collectors: list[LineCollector] = []
        for name in SERVICES:
            self.services[name] = self._service(name)

    def _service(self, name: str) -> Service:
        resource = Resource.create({"service.name": name, "service.namespace": "shop"})
        # An explicit sampler so that an OTEL_TRACES_SAMPLER in the environment cannot thin out
        # the spans the manifest counts on.
        sampler = ParentBased(ALWAYS_ON)
        provider = TracerProvider(resource=resource, sampler=sampler)
        provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        ghost = TracerProvider(resource=resource, sampler=sampler)

        log_provider = LoggerProvider(resource=resource)
        log_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        with warnings.catch_warnings():
            # The SDK's LoggingHandler is deprecated in favour of the one in
            # opentelemetry-instrumentation-logging; it is still the SDK's own bridge from
            # `logging` and needs no extra package.
            warnings.simplefilter("ignore", DeprecationWarning)
            otlp_handler = LoggingHandler(level=logging.DEBUG, logger_provider=log_provider)
        self.providers += [provider, ghost, log_provider]

        collector = LineCollector(JsonLineFormatter(name))
        self.collectors.append(collector)
        return Service(
            name=name,
            tracer=provider.get_tracer(f"shop.{name}", "1.0.0"),
            ghost_tracer=ghost.get_tracer(f"shop.{name}", "1.0.0"),
            otlp_logger=_logger(f"{name}.otel", otlp_handler),
            json_logger=_logger(f"{name}.stdout", collector),
        )

    def take_spans(self):
        spans = self.span_exporter.get_finished_spans()
        self.span_exporter.clear()
        return spans

    def take_logs(self):
        logs = self.log_exporter.get_finished_logs()
        self.log_exporter.clear()
        return logs

    def take_log_records(self) -> list[tuple[str | None, bytes]]:
        """Everything logged since the last call, as (key, value) Kafka records."""
        records = encode_trace_logs(self.take_logs())
        for line in (line for c in self.collectors for line in c.drain()):
            records.append((json.loads(line).get("trace_id"), line.encode()))
        return records

    def shutdown(self):
        for p in self.providers:
            p.shutdown()


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    # Kept off the root logger: nothing of the test data should reach this script's stderr.
    logger.propagate = False
    return logger


@dataclass
class SpanInfo:
    service: str
    name: str
    exported: bool


@dataclass
class ManifestEntry:
    log_id: str
    format: str
    service: str
    trace_id: str | None
    span_id: str | None
    expected_outcome: str
    expected_service: str | None
    expected_span_name: str | None
    expected_root_service: str | None
    expected_root_operation: str | None
    logs_before_spans: bool = False


@dataclass
class Run:
    """Emits the logs and keeps, for each, what tracejoin should make of it."""

    rng: random.Random
    manifest: list[ManifestEntry] = field(default_factory=list)

    def log(self, svc: Service, level: int, text: str, trace_ctx: "TraceBuilder | None" = None,
            exc_info: bool = False) -> None:
        log_id = f"L{len(self.manifest) + 1:04d}"
        fmt = self.rng.choice(("otlp", "json"))
        message = f"log_id={log_id} {text}"
        if fmt == "otlp":
            svc.otlp_logger.log(level, message, exc_info=exc_info)
        else:
            shape = self.rng.choice(("rfc3339", "rfc3339_millis", "epoch_millis"))
            svc.json_logger.log(level, message, exc_info=exc_info, extra={"ts_shape": shape})

        ctx = trace.get_current_span().get_span_context()
        entry = ManifestEntry(
            log_id=log_id, format=fmt, service=svc.name,
            trace_id=format_trace_id(ctx.trace_id) if ctx.is_valid else None,
            span_id=format_span_id(ctx.span_id) if ctx.is_valid else None,
            expected_outcome="no_trace_id", expected_service=None, expected_span_name=None,
            expected_root_service=None, expected_root_operation=None,
        )
        if ctx.is_valid:
            assert trace_ctx is not None and trace_ctx.stack, "a span is active outside a trace"
            current = trace_ctx.stack[-1]
            if trace_ctx.kind == DROPPED:
                entry.expected_outcome = "unmatched"
            else:
                entry.expected_root_service, entry.expected_root_operation = trace_ctx.root
                entry.logs_before_spans = trace_ctx.logs_first
                if current.exported:
                    entry.expected_outcome = "matched_span"
                    entry.expected_service, entry.expected_span_name = current.service, current.name
                else:
                    entry.expected_outcome = "matched_trace"
        self.manifest.append(entry)


class TraceBuilder:
    """Tracks which span is active, and whether it will be exported, as the trace is built."""

    def __init__(self, run: Run, kind: str, logs_first: bool):
        self.run, self.kind, self.logs_first = run, kind, logs_first
        self.stack: list[SpanInfo] = []
        self.root: tuple[str, str] | None = None

    @contextmanager
    def span(self, svc: Service, name: str, kind: SpanKind, carrier: dict | None = None,
             attributes: dict | None = None):
        # A carrier means the span starts in another process: its parent comes from the W3C
        # traceparent header the caller injected, as across a real HTTP or messaging hop.
        parent = PROPAGATOR.extract(carrier) if carrier is not None else None
        with svc.tracer.start_as_current_span(name, context=parent, kind=kind,
                                              attributes=attributes) as s:
            if self.root is None:
                self.root = (svc.name, name)
            self.stack.append(SpanInfo(svc.name, name, exported=True))
            try:
                yield s
            finally:
                self.stack.pop()

    @contextmanager
    def unexported_span(self, svc: Service, name: str):
        """A child span sharing the trace id whose span record never reaches Kafka.

        Two ways it happens in practice, both used: a library traced through a provider with no
        exporting processor, and a span context made up by hand (NonRecordingSpan), as when an
        id arrives from a system that does not report spans.
        """
        if self.run.rng.random() < 0.5:
            cm = svc.ghost_tracer.start_as_current_span(name, kind=SpanKind.INTERNAL)
        else:
            parent = trace.get_current_span().get_span_context()
            made_up = SpanContext(parent.trace_id, RandomIdGenerator().generate_span_id(),
                                  is_remote=False, trace_flags=parent.trace_flags)
            cm = trace.use_span(NonRecordingSpan(made_up))
        with cm as s:
            self.stack.append(SpanInfo(svc.name, name, exported=False))
            try:
                yield s
            finally:
                self.stack.pop()

    def log(self, svc: Service, level: int, text: str, exc_info: bool = False):
        self.run.log(svc, level, text, self, exc_info=exc_info)

    def maybe_log(self, svc: Service, level: int, text: str, p: float = 0.6):
        if self.run.rng.random() < p:
            self.log(svc, level, text)


def inject() -> dict:
    carrier: dict = {}
    PROPAGATOR.inject(carrier)
    return carrier


def fail(span, exc: Exception) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)))


def checkout_trace(tb: TraceBuilder, t: Telemetry) -> None:
    """frontend -> checkout -> payments, and an order event consumed by inventory."""
    fe, co, pay, inv = (t.services[n] for n in SERVICES)
    rng = tb.run.rng
    route = rng.choice(("POST /api/checkout", "POST /api/cart/checkout", "PUT /api/order"))
    declined = rng.random() < 0.3
    with tb.span(fe, route, SpanKind.SERVER, attributes={"http.request.method": route.split()[0],
                                                         "http.route": route.split()[1]}) as root:
        tb.log(fe, logging.INFO, f"request received route={route}")
        with tb.span(fe, "render cart", SpanKind.INTERNAL):
            tb.maybe_log(fe, logging.DEBUG, "cart rendered items=3")
        with tb.span(fe, "POST /checkout", SpanKind.CLIENT) as fe_client:
            headers = inject()
            with tb.span(co, "POST /checkout", SpanKind.SERVER, carrier=headers) as co_server:
                tb.maybe_log(co, logging.INFO, "placing order")
                if tb.kind == PARTIAL:
                    with tb.unexported_span(co, "compute tax"):
                        tb.log(co, logging.INFO, "tax computed region=EU")
                        tb.maybe_log(co, logging.DEBUG, "tax table cache hit", p=0.4)
                with tb.span(co, "POST /charge", SpanKind.CLIENT) as co_client:
                    headers = inject()
                    with tb.span(pay, "POST /charge", SpanKind.SERVER, carrier=headers) as charge:
                        tb.maybe_log(pay, logging.INFO, "charging card amount=42.00")
                        if declined:
                            try:
                                raise PaymentDeclined("card declined: insufficient funds")
                            except PaymentDeclined as exc:
                                fail(charge, exc)
                                tb.log(pay, logging.ERROR, "charge failed", exc_info=True)
                    if declined:
                        co_client.set_status(Status(StatusCode.ERROR, "HTTP 402"))
                if declined:
                    co_server.set_status(Status(StatusCode.ERROR, "payment declined"))
                    tb.log(co, logging.WARNING, "order rejected reason=payment_declined")
                else:
                    with tb.span(co, "orders publish", SpanKind.PRODUCER):
                        message_headers = inject()
                    # The consumer span runs later in another process; its parent is the
                    # producer span, carried in the message headers.
                    with tb.span(inv, "orders process", SpanKind.CONSUMER, carrier=message_headers):
                        tb.log(inv, logging.INFO, "stock reserved sku=SKU-1042 qty=1")
            if declined:
                fe_client.set_status(Status(StatusCode.ERROR, "HTTP 402"))
        if declined:
            root.set_status(Status(StatusCode.ERROR))
        tb.maybe_log(fe, logging.INFO, "response sent status=" + ("402" if declined else "200"))


def restock_trace(tb: TraceBuilder, t: Telemetry) -> None:
    """Rooted in a CONSUMER span in inventory (a message with no trace context), paying a supplier."""
    inv, pay, co = t.services["inventory"], t.services["payments"], t.services["checkout"]
    rng = tb.run.rng
    with tb.span(inv, "stock-events process", SpanKind.CONSUMER):
        tb.log(inv, logging.INFO, "stock event received kind=restock")
        with tb.span(inv, "apply adjustment", SpanKind.INTERNAL) as adjust:
            if rng.random() < 0.25:
                try:
                    raise ValueError("negative stock for sku=SKU-7")
                except ValueError as exc:
                    fail(adjust, exc)
                    tb.log(inv, logging.ERROR, "adjustment rejected", exc_info=True)
            else:
                tb.maybe_log(inv, logging.INFO, "stock adjusted sku=SKU-7 delta=+40")
        if tb.kind == PARTIAL:
            with tb.unexported_span(inv, "supplier sdk call"):
                tb.log(inv, logging.WARNING, "supplier api slow latency_ms=870")
        with tb.span(inv, "POST /invoice", SpanKind.CLIENT):
            headers = inject()
            with tb.span(pay, "POST /invoice", SpanKind.SERVER, carrier=headers):
                tb.maybe_log(pay, logging.INFO, "invoice recorded supplier=ACME")
        with tb.span(inv, "POST /availability", SpanKind.CLIENT):
            headers = inject()
            with tb.span(co, "POST /availability", SpanKind.SERVER, carrier=headers):
                tb.maybe_log(co, logging.DEBUG, "availability cache invalidated")


def context_free_log(run: Run, t: Telemetry) -> None:
    """A log emitted with no span active: startup, health checks, background chatter."""
    svc = t.services[run.rng.choice(SERVICES)]
    text = run.rng.choice(("health check ok", "config reloaded", "connection pool resized size=8",
                           "cache warmup finished"))
    run.log(svc, logging.INFO, text)


def plan(rng: random.Random, n: int) -> tuple[list[str], set[int]]:
    """The kind of each trace, and which of the produced ones have their logs go first.

    Counts rather than independent draws, so that every scenario appears even for small N.
    """
    n_dropped = max(1, round(n * 0.2)) if n >= 3 else 0
    n_partial = max(1, round(n * 0.35)) if n >= 2 else 0
    kinds = [DROPPED] * n_dropped + [PARTIAL] * n_partial
    kinds += [EXPORTED] * (n - len(kinds))
    rng.shuffle(kinds)
    produced = [i for i, k in enumerate(kinds) if k != DROPPED]
    logs_first = set(rng.sample(produced, round(len(produced) / 3)))
    return kinds, logs_first


class Sink:
    """The Kafka producer, with every delivery checked."""

    def __init__(self, bootstrap: str):
        self.errors: list[str] = []
        self.sent = Counter()
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            # Retries must neither duplicate nor reorder records: the order across the run
            # (logs before spans for some traces) is part of what is tested.
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 30000,
            "error_cb": self._client_error,
        })

    def _client_error(self, err: KafkaError) -> None:
        # Transient errors (a broker connection dropping) are retried by librdkafka and, if
        # they last, surface as failed deliveries; only a fatal one ends the run here.
        if err.fatal():
            self.errors.append(f"client error: {err}")

    def send(self, topic: str, key: str | None, value: bytes) -> None:
        def delivered(err, msg):
            if err is not None:
                self.errors.append(f"delivery to {msg.topic()} failed: {err}")

        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain it
                self.producer.poll(0.5)
        self.producer.poll(0)
        self.sent[topic] += 1

    def flush(self) -> None:
        left = self.producer.flush(30)
        if left:
            self.errors.append(f"{left} records still undelivered after 30 s")
        if self.errors:
            raise SystemExit("produce.py: " + "; ".join(self.errors[:5]))


spans_posted = [0]


def post(url: str, body: bytes) -> None:
    import urllib.request
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    for attempt in range(50):
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status // 100 == 2:
                    if url.endswith("/v1/traces"):
                        spans_posted[0] += 1
                    return
        except OSError:
            import time
            time.sleep(0.2)
    raise SystemExit(f"produce.py: the Collector at {url} refused the export")


def wait_for_topic(bootstrap: str, topic: str) -> None:
    """Waits (up to 60 s) until the topic has records and their count has not moved for 2 s
    (the Collector's queue may merge requests, so counts need not match what was posted)."""
    import time
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "produce-py-wait"})
    deadline = time.time() + 60
    last = [-1, time.time()]
    try:
        while time.time() < deadline:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            total = 0
            for p in meta.partitions:
                low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += high - low
            if total > 0 and total == last[0]:
                if time.time() - last[1] >= 2:
                    return
            else:
                last[:] = [total, time.time()]
            time.sleep(0.2)
    finally:
        c.close()
    raise SystemExit(f"produce.py: the Collector did not deliver to {topic} in 60 s")


def ensure_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        # Fails fast with a plain message when no broker answers, rather than after the
        # topic-creation request's own minute-long timeout.
        admin.list_topics(timeout=20)
    except KafkaException as exc:
        raise SystemExit(f"produce.py: no Kafka broker at {bootstrap}: {exc.args[0]}")
    wanted = [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in dict.fromkeys(topics)]
    for topic, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise SystemExit(f"produce.py: cannot create topic {topic}: {exc.args[0]}")


def encode_trace_logs(log_records) -> list[tuple[str | None, bytes]]:
    """One ExportLogsServiceRequest per trace id, as a trace-partitioning exporter would send;
    records without a trace id go together in one request with no key."""
    by_trace: dict[int, list] = {}
    for rec in log_records:
        by_trace.setdefault(rec.log_record.trace_id or 0, []).append(rec)
    return [(format_trace_id(tid) if tid else None, encode_logs(recs).SerializeToString())
            for tid, recs in by_trace.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    ap.add_argument("--spans-topic", required=True)
    ap.add_argument("--logs-topic", required=True)
    ap.add_argument("--manifest", required=True, help="where to write the expectations (JSON lines)")
    ap.add_argument("--traces", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--unkeyed", action="store_true", help="produce every record without a key")
    ap.add_argument("--batch", type=int, default=1, help="traces per span record")
    ap.add_argument("--otlp-endpoint", help="a Collector's OTLP/HTTP receiver, e.g. http://127.0.0.1:4318")
    args = ap.parse_args()
    if args.traces < 1:
        ap.error("--traces must be at least 1")

    rng = random.Random(args.seed)
    ensure_topics(args.bootstrap, [args.spans_topic, args.logs_topic])
    sink = Sink(args.bootstrap)
    telemetry = Telemetry()
    run = Run(rng)
    kinds, logs_first = plan(rng, args.traces)
    late_spans: list[tuple[str, bytes]] = []
    span_count = 0
    batch: list = []  # SDK spans of up to --batch traces, sent as one request
    late_batch: list = []

    def key(k: str | None) -> str | None:
        return None if args.unkeyed else k

    def flush_batch(spans: list, out: list | None = None) -> None:
        if not spans:
            return
        record = (key(format_trace_id(spans[0].context.trace_id)), encode_spans(spans).SerializeToString())
        spans.clear()
        if out is None:
            send_spans(record)
        else:
            out.append(record)

    def send_spans(record) -> None:
        if args.otlp_endpoint:
            post(args.otlp_endpoint + "/v1/traces", record[1])
        else:
            sink.send(args.spans_topic, *record)

    def send_log(k, value: bytes) -> None:
        # OTLP logs are protobuf (they start with field 1, 0x0a); JSON lines start with '{'.
        if args.otlp_endpoint and not value.startswith(b"{"):
            post(args.otlp_endpoint + "/v1/logs", value)
        else:
            sink.send(args.logs_topic, key(k), value)

    for i, kind in enumerate(kinds):
        if rng.random() < 0.3:
            context_free_log(run, telemetry)
        tb = TraceBuilder(run, kind, logs_first=i in logs_first)
        (checkout_trace if rng.random() < 0.75 else restock_trace)(tb, telemetry)

        spans = telemetry.take_spans()
        trace_id = format_trace_id(spans[0].context.trace_id)
        assert all(format_trace_id(s.context.trace_id) == trace_id for s in spans)
        log_records = telemetry.take_log_records()

        if kind != DROPPED:
            span_count += len(spans)
            if not tb.logs_first:
                batch.extend(spans)
                if len({s.context.trace_id for s in batch}) >= args.batch:
                    flush_batch(batch)
            else:
                # Held back until every other record is delivered, so these logs are in the
                # topic well before any span of their trace.
                late_batch.extend(spans)
                if len({s.context.trace_id for s in late_batch}) >= args.batch:
                    flush_batch(late_batch, late_spans)
        for k, value in log_records:
            send_log(k, value)

    if not any(e.expected_outcome == "no_trace_id" for e in run.manifest):
        context_free_log(run, telemetry)
    for k, value in telemetry.take_log_records():
        send_log(k, value)
    flush_batch(batch)
    flush_batch(late_batch, late_spans)

    sink.flush()
    for record in late_spans:
        send_spans(record)
    sink.flush()
    if args.otlp_endpoint:
        # The Collector's sending queue delivers asynchronously: wait until its exports are in
        # Kafka, so a manifest on disk still means its data is there.
        wait_for_topic(args.bootstrap, args.spans_topic)
    telemetry.shutdown()

    # Written only once everything is delivered: a manifest on disk means its data is in Kafka.
    tmp = args.manifest + ".tmp"
    with open(tmp, "w") as out:
        for e in run.manifest:
            out.write(json.dumps(e.__dict__) + "\n")
    os.replace(tmp, args.manifest)

    outcomes = Counter(e.expected_outcome for e in run.manifest)
    formats = Counter(e.format for e in run.manifest)
    print(f"produce.py: {args.traces} traces ({Counter(kinds)[DROPPED]} never produced, "
          f"{len(late_spans)} with spans after logs), {span_count} spans produced, "
          f"{len(run.manifest)} logs ({', '.join(f'{k}={v}' for k, v in sorted(formats.items()))}); "
          f"outcomes: {', '.join(f'{k}={v}' for k, v in sorted(outcomes.items()))}; "
          f"records: {args.spans_topic}={sink.sent[args.spans_topic]} "
          f"{args.logs_topic}={sink.sent[args.logs_topic]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
