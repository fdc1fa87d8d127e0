//! Assembling workers: what the workers of a process share, and one worker's parts, from the
//! config.

use super::*;

/// What the workers of one process share: the compiled rules, the derived signals (one set of
/// series per process, whatever the number of workers) and the Kafka producer.
pub(in crate::pipeline) struct Shared {
    pub(in crate::pipeline) rules: Arc<CompiledRules>,
    /// Span attributes the decoder keeps: the join's, the RED dimensions', the SLO predicates'.
    keep: Vec<String>,
    red: Option<RedMetrics>,
    service_graph: Option<ServiceGraph>,
    slo: Option<Arc<SharedSlo>>,
    /// Partitions of the SLO state changelog, once it exists (`pipeline::slo_state`).
    pub(in crate::pipeline) slo_changelog_partitions: Option<i32>,
    kafka: KafkaSink,
    open_traces: Arc<[AtomicU64]>,
    pub(in crate::pipeline) gate: Arc<StartGate>,
}

impl Shared {
    pub(in crate::pipeline) fn new(
        config: &Config,
        health: &Health,
        workers: usize,
    ) -> Result<Self, PipelineError> {
        let rules = match &config.rules.extract {
            Some(path) => ExtractRules::load(path)?,
            None => ExtractRules::builtin(),
        };
        let mut keep = config.join.span_attributes.clone();
        let red = if config.metrics.red.enabled {
            let red = RedMetrics::new(&config.metrics.red)?;
            health.add_registry(red.registry());
            let exemplars = red.for_another_worker();
            health.add_exemplars(Box::new(move |out| exemplars.exemplars(out)));
            keep.extend(config.metrics.red.dimensions.iter().map(|d| d.name.clone()));
            Some(red)
        } else {
            None
        };
        let service_graph = if config.metrics.service_graph.enabled {
            let g = ServiceGraph::new(&config.metrics.service_graph)?;
            health.add_registry(g.registry());
            let exemplars = g.for_another_worker();
            health.add_exemplars(Box::new(move |out| exemplars.exemplars(out)));
            keep.extend(config.metrics.service_graph.span_attributes());
            Some(g)
        } else {
            None
        };
        let slo = match &config.rules.slo {
            Some(path) => {
                let cfg = SloConfig::load(path)?;
                keep.extend(cfg.span_attributes());
                let engine = SloEngine::new(&cfg, config.join.max_wait)?;
                health.add_registry(engine.registry());
                let topic = config.outputs.attribution_topic.as_deref().map(Arc::from);
                Some(SharedSlo::new(engine, workers, topic))
            }
            None => None,
        };
        keep.sort();
        keep.dedup();
        Ok(Shared {
            rules: Arc::new(rules.compile()?),
            keep,
            red,
            service_graph,
            slo,
            slo_changelog_partitions: None,
            kafka: KafkaSink::new(config)?,
            open_traces: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            gate: StartGate::new(workers),
        })
    }
}

impl Shared {
    /// Whether some derived state outlives a join window and so needs the state changelog:
    /// the SLO windows, or RED series counted per partition.
    pub(in crate::pipeline) fn has_changelogged_state(&self, config: &Config) -> bool {
        self.slo.is_some() || (self.red.is_some() && config.metrics.red.per_partition)
    }
}

/// What an embedder adds to one worker.
pub(in crate::pipeline) struct WorkerHooks {
    pub(in crate::pipeline) progress: Arc<Progress>,
    pub(in crate::pipeline) samples: Option<mpsc::Sender<(JoinOutcome, String)>>,
    pub(in crate::pipeline) sinks: Vec<Box<dyn Sink>>,
}

impl Worker {
    /// Builds one worker's parts and subscribes its consumer.
    pub(in crate::pipeline) fn assemble(
        index: usize,
        config: Config,
        plan: &RepartitionPlan,
        shared: &Shared,
        health: Health,
        hooks: WorkerHooks,
        shutdown: CancellationToken,
    ) -> Result<Self, PipelineError> {
        let topics = TopicTable::with_plan(&config, plan);
        let ledger = AckLedger::new();
        let trouble = BrokerTrouble::default();
        let (consumer, changes) = subscribe(
            &config,
            index,
            topics.clone(),
            ledger.published(),
            trouble.clone(),
            shared.gate.clone(),
            health.clone(),
        )?;

        let mut observers: Vec<Box<dyn Observer>> = Vec::new();
        if let Some(red) = &shared.red {
            observers.push(Box::new(RedObserver(red.for_another_worker())));
        }
        if let Some(g) = &shared.service_graph {
            observers.push(Box::new(ServiceGraphObserver {
                graph: g.for_another_worker(),
                worker: index,
                reported: (0, 0),
            }));
        }
        if let Some(slo) = &shared.slo {
            observers.push(Box::new(SloObserver {
                shared: slo.clone(),
                worker: index,
                events: Vec::new(),
            }));
        }
        observers.push(Box::new(ProgressObserver {
            progress: hooks.progress,
            samples: hooks.samples,
            samples_sent: [0; 4],
            delivered_on_emit: !config.outputs.kafka.enabled,
            worker: index,
            open_traces: shared.open_traces.clone(),
        }));

        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if config.outputs.kafka.enabled {
            sinks.push(Box::new(EnrichedKafka::new(&config.outputs.kafka.topic)));
        }
        if let Some(cfg) = &config.outputs.loki {
            let loki = LokiSink::new(cfg.clone())?;
            tracing::info!(url = loki.client().url(), worker = index, "loki sink on");
            sinks.push(Box::new(LokiOutput::new(loki)));
        }
        sinks.extend(hooks.sinks);

        let j = &config.join;
        Ok(Worker {
            rekey: rekey::Targets::new(plan),
            marks: marks::Marks::new(plan, &topics, config.join.idle_timeout),
            parts: Vec::new(),
            index,
            gauges: metrics().worker(index),
            copartition: CopartitionCheck::new(
                consumer.clone(),
                topics.clone(),
                config.inputs.partitioner,
                shutdown,
            ),
            had_trace_id: false,
            consumed: topics
                .names()
                .map(|t| metrics().records_consumed_handle(t))
                .collect(),
            span_decoder: SpanDecoder::new(&shared.keep, 100_000),
            log_decoder: LogDecoder::new(shared.rules.clone(), 100_000),
            // The state bounds are the process's: each worker gets its share, and shares it
            // among its tasks.
            tasks: Tasks::new(
                JoinSettings {
                    max_wait: j.max_wait,
                    span_retention: j.span_retention,
                    max_traces: (j.max_traces / shared.open_traces.len()).max(1),
                    max_state_bytes: (j.max_state_bytes.as_usize() / shared.open_traces.len())
                        .max(1),
                },
                j.allowed_lateness,
                j.idle_timeout,
            ),
            observers,
            fanout: Fanout::new(sinks),
            outbox: Outbox::new(shared.kafka.clone(), &config.outputs.dead_letter.topic),
            commits: Commits::new(
                ledger,
                config.kafka.commit_interval,
                // Like the state bounds, the in-flight bound is the process's.
                (config.limits.max_in_flight / shared.open_traces.len()).max(1),
            ),
            slo_state: match shared.slo_changelog_partitions {
                Some(partitions) => Some(
                    SloChangelog::new(
                        &config,
                        shared.slo.clone(),
                        shared
                            .red
                            .as_ref()
                            .filter(|_| config.metrics.red.per_partition)
                            .map(RedMetrics::for_another_worker),
                        partitions,
                        index,
                    )
                    .map_err(PipelineError::from)?,
                ),
                None => None,
            },
            health,
            spans_buf: Vec::new(),
            logs_buf: Vec::new(),
            out: JoinOutput::default(),
            consumer,
            changes,
            seen_before: HashMap::new(),
            gate: shared.gate.watch(),
            trouble,
            topics,
            config,
        })
    }
}
