//! `tracejoin check`: validate a config and show what the rules make of sample lines.

use crate::config::Config;
use crate::decode::logline::{InputLogFormat, LogDecoder};
use crate::decode::rules::ExtractRules;
use crate::model::Origin;
use anyhow::Context;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// Validates `config` (defaults when `None`) and decodes each line of `sample`, printing what
/// each yields. Fails on an invalid config or rules file.
pub fn run(config: Option<&Path>, sample: Option<&Path>) -> anyhow::Result<()> {
    let config = match config {
        Some(p) => Config::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => Config::default(),
    };
    let rules = match &config.rules.extract {
        Some(p) => ExtractRules::load(p)?,
        None => ExtractRules::builtin(),
    };
    let compiled = rules.compile()?;
    println!(
        "config ok: spans from {:?}, logs from {:?}",
        config.inputs.spans.topic,
        config
            .inputs
            .logs
            .iter()
            .map(|l| &l.topic)
            .collect::<Vec<_>>()
    );
    println!(
        "rules ok: {} text rules, {} trace id fields",
        compiled.text.len(),
        compiled.fields.trace_id.len()
    );
    let Some(sample) = sample else { return Ok(()) };
    let text =
        std::fs::read_to_string(sample).with_context(|| format!("reading {}", sample.display()))?;
    let mut decoder = LogDecoder::new(Arc::new(compiled), 1000);
    let format = config
        .inputs
        .logs
        .first()
        .map_or(InputLogFormat::Auto, |l| l.format);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut out = Vec::new();
        let origin = Origin {
            topic: 1,
            partition: 0,
            offset: i as i64,
        };
        match decoder.decode(
            Bytes::copy_from_slice(line.as_bytes()),
            format,
            origin,
            0,
            &mut out,
        ) {
            Ok(()) => {
                for ev in out {
                    println!(
                        "line {:>3}: {:<7} trace_id={} span_id={} level={} time={} body={:?}",
                        i + 1,
                        ev.format.as_str(),
                        ev.trace_id.map_or("-".into(), |t| t.to_string()),
                        ev.span_id.map_or("-".into(), |s| s.to_string()),
                        ev.severity.as_deref().unwrap_or("-"),
                        if ev.timestamp_source == crate::model::TimestampSource::Record {
                            "record"
                        } else {
                            "kafka"
                        },
                        ev.body,
                    );
                }
            }
            Err(e) => println!("line {:>3}: error {} ({e})", i + 1, e.code()),
        }
    }
    Ok(())
}
