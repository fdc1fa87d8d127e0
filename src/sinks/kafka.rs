//! The Kafka producer (enriched logs, dead letters, derived events) and the `logs.enriched` sink.
//!
//! Idempotent producer (`enable.idempotence=true`, `acks=all`), so librdkafka's own retries do
//! not duplicate or reorder. A send whose delivery still fails (after `message.timeout.ms`) is
//! sent again after a pause, forever: the record carries its input's token meanwhile, so the
//! commit cannot pass it, and the in-flight bound stops consumption if the cluster stays down.

use super::{Emitted, Outbox, Settled, Sink};
use crate::config::Config;
use crate::sources::ack::Ack;
use crate::sources::kafka::{apply_properties, base_client_config};
use crate::telemetry::metrics;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A record to produce.
#[derive(Debug)]
pub struct OutRecord {
    /// Output topic.
    pub topic: Arc<str>,
    /// Key (trace id for enriched logs; the original key for dead letters).
    pub key: Option<Vec<u8>>,
    /// Value.
    pub payload: Vec<u8>,
    /// Headers (dead letters carry their reason and origin here).
    pub headers: Option<OwnedHeaders>,
    /// The token of the input record this acknowledges (dropped once Kafka has it).
    pub ack: Ack,
    /// The log's event time, for the end-to-end latency histogram.
    pub event_time_nanos: Option<i64>,
    /// The partition, when the producer's partitioner must not choose (re-keyed records are
    /// placed by murmur2, as Kafka Streams places them).
    pub partition: Option<i32>,
    /// The record timestamp (ms), when it must be the input record's (re-keyed records).
    pub timestamp_ms: Option<i64>,
}

/// A record in the producer's queue: resolves with its delivery report.
type Queued = Pin<Box<dyn Future<Output = Result<(), KafkaError>> + Send>>;

/// A pending delivery; resolves once Kafka acknowledged the record (its token dropped).
pub type Delivery = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The producer, cheap to clone.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer,
}

impl KafkaSink {
    /// Creates the producer.
    pub fn new(config: &Config) -> KafkaResult<Self> {
        let mut c = base_client_config(config)?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            // The in-flight bound (limits.max_in_flight) is what limits the queue; this is a backstop.
            .set("queue.buffering.max.kbytes", "262144");
        apply_properties(&mut c, &config.outputs.kafka.properties)?;
        Ok(KafkaSink {
            producer: c.create()?,
        })
    }

    /// The underlying producer (for flushing at shutdown).
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Sends a record; the future resolves once Kafka acknowledged it. The record enters the
    /// producer's queue now, not when the future is first polled, so the records sent to one
    /// partition reach it in the order of these calls: the re-keying stage's progress marks
    /// rely on that (a mark lands behind every record forwarded before it).
    pub fn send(&self, record: OutRecord) -> Delivery {
        let producer = self.producer.clone();
        let mut queued = Self::enqueue(&producer, &record);
        Box::pin(async move {
            loop {
                let outcome = match queued.take() {
                    Some(delivery) => delivery.await,
                    // The queue was full (or the delivery failed): wait for room, as `send` does.
                    None => producer
                        .send(Self::future_record(&record), Timeout::Never)
                        .await
                        .map(|_| ())
                        .map_err(|(e, _)| e),
                };
                match outcome {
                    Ok(()) => {
                        metrics().produced(&record.topic);
                        if let Some(t) = record.event_time_nanos {
                            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
                            metrics().end_to_end_latency(((now - t).max(0)) as f64 / 1e9);
                        }
                        return;
                    }
                    Err(e) => {
                        metrics().produce_retry(&record.topic);
                        tracing::warn!(topic = %record.topic, error = %e, "delivery failed; sending again in 1s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    /// Puts the record in the producer's queue; `None` when the queue is full.
    fn enqueue(producer: &FutureProducer, record: &OutRecord) -> Option<Queued> {
        let delivery = producer.send_result(Self::future_record(record)).ok()?;
        Some(Box::pin(async move {
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e),
                Err(_canceled) => Err(KafkaError::Canceled),
            }
        }))
    }

    fn future_record(record: &OutRecord) -> FutureRecord<'_, Vec<u8>, Vec<u8>> {
        let mut fr = FutureRecord::to(&record.topic).payload(&record.payload);
        if let Some(k) = &record.key {
            fr = fr.key(k);
        }
        if let Some(h) = &record.headers {
            fr = fr.headers(h.clone());
        }
        if let Some(p) = record.partition {
            fr = fr.partition(p);
        }
        if let Some(t) = record.timestamp_ms {
            fr = fr.timestamp(t);
        }
        fr
    }
}

/// Dead-letter headers: why and where from.
pub fn dead_letter_headers(
    reason_code: &str,
    message: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OwnedHeaders {
    let partition = partition.to_string();
    let offset = offset.to_string();
    OwnedHeaders::new()
        .insert(Header {
            key: "tracejoin.error.reason",
            value: Some(reason_code),
        })
        .insert(Header {
            key: "tracejoin.error.message",
            value: Some(message),
        })
        .insert(Header {
            key: "tracejoin.source.topic",
            value: Some(topic),
        })
        .insert(Header {
            key: "tracejoin.source.partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "tracejoin.source.offset",
            value: Some(offset.as_str()),
        })
}

/// The `outputs.kafka` sink: each enriched log as one record keyed by its trace id.
pub struct EnrichedKafka {
    topic: Arc<str>,
}

impl EnrichedKafka {
    /// To `topic`.
    pub fn new(topic: &str) -> Self {
        EnrichedKafka {
            topic: topic.into(),
        }
    }
}

impl Sink for EnrichedKafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn send(&mut self, log: &Emitted<'_>, ack: &Ack, out: &mut Outbox) {
        let joined = log.joined;
        let record = OutRecord {
            topic: self.topic.clone(),
            key: joined.log.trace_id.map(|t| t.to_hex().as_bytes().to_vec()),
            payload: log.json.to_vec(),
            headers: None,
            ack: ack.clone(),
            event_time_nanos: Some(joined.log.timestamp_unix_nanos),
            partition: None,
            timestamp_ms: None,
        };
        let delivery = out.kafka().send(record);
        out.push("kafka", 1, async move {
            delivery.await;
            Settled::Done
        });
    }
}
