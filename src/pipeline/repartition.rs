//! The repartition plan: which input topics are re-keyed by trace id before the join, decided
//! once at start-up, and the internal topics they go to.
//!
//! `inputs.repartition: auto` samples the newest records of every input topic (up to
//! [`SAMPLE_PER_PARTITION`] per partition) and keeps a topic out of the stage only when the
//! sample proves it co-partitioned by trace id with the others (`sources::repartition`'s check);
//! a topic with nothing to sample is re-keyed, since nothing proves its producers key by trace id
//! — unless every input topic has a single partition, where every trace is on partition 0 anyway.
//! Every instance of a group samples the same topics, so they come to the same plan; an instance
//! that finds the internal topics already created follows them for topics it has no evidence on.

use crate::config::Config;
use crate::decode::logline::LogDecoder;
use crate::decode::rules::CompiledRules;
use crate::model::{Origin, TraceId};
use crate::sources::kafka::{base_client_config, RepartitionPlan};
use crate::sources::repartition::{
    split_spans_json, split_spans_proto, CoPartitionCheck, Reason, RepartitionPolicy,
};
use crate::telemetry::metrics;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records sampled per input partition under `auto`.
pub(super) const SAMPLE_PER_PARTITION: i64 = 50;

/// Decides the plan and creates the internal topics it needs.
pub(super) async fn plan(
    config: &Config,
    rules: Arc<CompiledRules>,
) -> Result<RepartitionPlan, KafkaError> {
    let cfg = config.clone();
    let mut plan = tokio::task::spawn_blocking(move || decide(&cfg, rules))
        .await
        .expect("the sampling task does not panic")?;
    let inputs = input_names(config);
    for (name, on) in inputs.iter().zip(&plan.rekey) {
        metrics().repartition_active(name, *on);
    }
    if plan.spans() || plan.logs() {
        create_internal_topics(config, &mut plan).await?;
    }
    Ok(plan)
}

fn input_names(config: &Config) -> Vec<String> {
    std::iter::once(config.inputs.spans.topic.clone())
        .chain(config.inputs.logs.iter().map(|l| l.topic.clone()))
        .collect()
}

fn decide(config: &Config, rules: Arc<CompiledRules>) -> Result<RepartitionPlan, KafkaError> {
    let names = input_names(config);
    let group = &config.kafka.group_id;
    let mut plan = RepartitionPlan {
        rekey: vec![false; names.len()],
        partitions: 1,
        input_partitions: vec![0; names.len()],
        spans_topic: format!("{group}.repartition.spans"),
        logs_topic: format!("{group}.repartition.logs"),
        spans_topic_exists: false,
        logs_topic_exists: false,
    };
    let policy = config.inputs.repartition;
    let mut c = base_client_config(config)?;
    c.set("group.id", format!("{group}.repartition-sample"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create()?;
    let timeout = Duration::from_secs(10);
    let count = |topic: &str| -> i32 {
        consumer
            .fetch_metadata(Some(topic), timeout)
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32))
            .unwrap_or(0)
    };
    let counts: Vec<i32> = names.iter().map(|n| count(n)).collect();
    plan.input_partitions.clone_from(&counts);
    let existing = [count(&plan.spans_topic), count(&plan.logs_topic)];
    plan.spans_topic_exists = existing[0] > 0;
    plan.logs_topic_exists = existing[1] > 0;
    let internal_exists = existing.iter().any(|n| *n > 0);
    plan.partitions = match existing.iter().copied().max().filter(|n| *n > 0) {
        // Existing internal topics keep their partition count: re-key to what is there.
        Some(n) => n,
        None => config
            .inputs
            .repartition_partitions
            .unwrap_or_else(|| counts.iter().copied().max().unwrap_or(1).max(1)),
    };
    if policy == RepartitionPolicy::Never {
        tracing::info!(
            drains_internal_topics = internal_exists,
            "inputs.repartition: never — the input topics must be co-partitioned by trace id"
        );
        return Ok(plan);
    }
    if policy == RepartitionPolicy::Always {
        plan.rekey.iter_mut().for_each(|r| *r = true);
        tracing::info!(
            partitions = plan.partitions,
            "inputs.repartition: always — every input topic is re-keyed by trace id"
        );
        return Ok(plan);
    }
    if counts.iter().all(|c| *c <= 1) && plan.partitions <= 1 && !internal_exists {
        tracing::info!("inputs.repartition: auto — every input topic has one partition: co-partitioned as it is");
        return Ok(plan);
    }

    // Sample the newest records of every partition.
    let mut tpl = TopicPartitionList::new();
    for (name, n) in names.iter().zip(&counts) {
        for p in 0..*n {
            // Right after a topic is created its leaders may not be known yet: retry, then treat
            // the partition as having nothing to sample.
            let mut marks = None;
            for _ in 0..10 {
                match consumer.fetch_watermarks(name, p, timeout) {
                    Ok(m) => {
                        marks = Some(m);
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(300)),
                }
            }
            let Some((low, high)) = marks else { continue };
            if high > low {
                let from = (high - SAMPLE_PER_PARTITION).max(low);
                let _ = tpl.add_partition_offset(name, p, Offset::Offset(from));
            }
        }
    }
    let mut check = CoPartitionCheck::new(config.inputs.partitioner);
    if tpl.count() > 0 {
        consumer.assign(&tpl)?;
        let mut decoder = LogDecoder::new(rules, 10_000);
        let (mut logs, mut ids, mut parts) = (Vec::new(), Vec::<TraceId>::new(), Vec::new());
        let wanted = tpl.count() as i64 * SAMPLE_PER_PARTITION;
        let (mut seen, deadline) = (0, Instant::now() + Duration::from_secs(5));
        while seen < wanted && Instant::now() < deadline {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            seen += 1;
            let Some(i) = names.iter().position(|n| n == m.topic()) else {
                continue;
            };
            let payload = m.payload().unwrap_or_default();
            ids.clear();
            if i == 0 {
                parts.clear();
                let split = if payload.first() == Some(&b'{') {
                    split_spans_json(payload, &mut parts)
                } else {
                    split_spans_proto(payload, &mut parts)
                };
                if split.is_err() {
                    continue;
                }
                ids.extend(parts.iter().filter_map(|(k, _)| k.0));
            } else {
                let format = config.inputs.logs[i - 1].format;
                let origin = Origin {
                    topic: i as u16,
                    partition: m.partition(),
                    offset: m.offset(),
                };
                logs.clear();
                if decoder
                    .decode(
                        bytes::Bytes::copy_from_slice(payload),
                        format,
                        origin,
                        0,
                        &mut logs,
                    )
                    .is_err()
                {
                    continue;
                }
                ids.extend(logs.iter().filter_map(|l| l.trace_id));
            }
            check.observe(&names[i], m.partition(), m.key(), &ids, counts[i]);
        }
    }
    let decisions = check.decide(plan.partitions);
    for (i, name) in names.iter().enumerate() {
        let d = decisions.iter().find(|d| d.topic == name);
        let (on, why) = match d {
            Some(d) if d.reason != Reason::NoEvidence => (d.repartition, format!("{:?}", d.reason)),
            _ if internal_exists => (
                true,
                "no evidence; the group's internal topics exist".into(),
            ),
            _ => (
                true,
                "no evidence that its producers key by trace id".into(),
            ),
        };
        // The group's decision sticks: once a member re-keys a kind of input, every member
        // does, whatever its own sample says, so no trace is split between the two paths.
        let (on, why): (bool, String) = if !on && i == 0 && plan.spans_topic_exists {
            (true, "the group's internal spans topic exists".into())
        } else if !on && i > 0 && plan.logs_topic_exists {
            (true, "the group's internal logs topic exists".into())
        } else {
            (on, why)
        };
        plan.rekey[i] = on;
        tracing::info!(
            topic = %name,
            repartition = on,
            reason = %why,
            checked = d.map_or(0, |d| d.checked),
            mismatched = d.map_or(0, |d| d.mismatched),
            "inputs.repartition: auto"
        );
    }
    Ok(plan)
}

async fn create_internal_topics(
    config: &Config,
    plan: &mut RepartitionPlan,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base_client_config(config)?.create()?;
    let retention = config.inputs.repartition_retention.as_millis().to_string();
    let mut wanted = Vec::new();
    if plan.spans() {
        wanted.push(plan.spans_topic.clone());
    }
    if plan.logs() {
        wanted.push(plan.logs_topic.clone());
    }
    let topics: Vec<NewTopic> = wanted
        .iter()
        .map(|t| {
            NewTopic::new(t, plan.partitions, TopicReplication::Fixed(-1))
                .set("cleanup.policy", "delete")
                .set("retention.ms", &retention)
        })
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for r in results {
        match r {
            Ok(t) => {
                tracing::info!(topic = %t, partitions = plan.partitions, "created internal topic")
            }
            Err((t, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %t, "internal topic exists")
            }
            Err((t, e)) => {
                return Err(KafkaError::AdminOp(e)).inspect_err(
                    |_| tracing::error!(topic = %t, error = %e, "cannot create internal topic"),
                )
            }
        }
    }
    // An existing internal topic keeps its partition count: re-key to what is there.
    let consumer: BaseConsumer = base_client_config(config)?.create()?;
    let existing = consumer
        .fetch_metadata(Some(&wanted[0]), Duration::from_secs(10))
        .ok()
        .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32));
    if let Some(n) = existing {
        if n > 0 && n != plan.partitions {
            tracing::warn!(topic = %wanted[0], existing = n, wanted = plan.partitions, "internal topic has another partition count; using it");
            plan.partitions = n;
        }
    }
    Ok(())
}
