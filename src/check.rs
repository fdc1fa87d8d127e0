//! `tracejoin check`: validate a config and show what the rules make of sample lines.

use crate::config::Config;
use crate::decode::logline::{InputLogFormat, LogDecoder};
use crate::decode::rules::ExtractRules;
use crate::model::{LogFormat, Origin, TimestampSource, TraceIdWidth};
use anyhow::Context;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// Per format: lines, and lines with a trace id, a span id, a level, a time of their own.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FormatCounts {
    /// Lines decoded in this format.
    pub lines: u64,
    /// ... with a trace id.
    pub trace_id: u64,
    /// ... with a span id.
    pub span_id: u64,
    /// ... with a level.
    pub level: u64,
    /// ... with a time taken from the line.
    pub time: u64,
}

/// What `check` found in a sample: counts per format (`error` for lines that failed to
/// decode) and how many lines had no trace id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Counts by format name, in first-seen order.
    pub formats: Vec<(&'static str, FormatCounts)>,
    /// Lines (decode errors included) without a trace id.
    pub without_trace_id: u64,
}

impl Summary {
    fn counts(&mut self, format: &'static str) -> &mut FormatCounts {
        let i = match self.formats.iter().position(|(f, _)| *f == format) {
            Some(i) => i,
            None => {
                self.formats.push((format, FormatCounts::default()));
                self.formats.len() - 1
            }
        };
        &mut self.formats[i].1
    }
}

/// Validates `config` (defaults when `None`) and decodes each line of `sample`, printing what
/// each yields and which rule or field gave each value, then a summary per format. Fails on an
/// invalid config or rules file. With `require_trace_id`, the returned `bool` is false when any
/// sample line had no trace id (the CLI then exits with status 1).
pub fn run(
    config: Option<&Path>,
    sample: Option<&Path>,
    require_trace_id: bool,
) -> anyhow::Result<bool> {
    let config = match config {
        Some(p) => Config::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => Config::default(),
    };
    let rules = match &config.rules.extract {
        Some(p) => ExtractRules::load(p).context("loading the extraction rules")?,
        None => ExtractRules::builtin(),
    };
    let compiled = rules.compile().context("compiling the extraction rules")?;
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
    let Some(sample) = sample else {
        return Ok(true);
    };
    let text =
        std::fs::read_to_string(sample).with_context(|| format!("reading {}", sample.display()))?;
    let mut decoder = LogDecoder::new(Arc::new(compiled), 1000);
    let mut summary = Summary::default();
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
                let line_based = !matches!(
                    out.first().map(|e| e.format),
                    Some(LogFormat::OtlpJson | LogFormat::OtlpProto)
                );
                for ev in out {
                    let own_time = ev.timestamp_source == TimestampSource::Record;
                    println!(
                        "line {:>3}: {:<7} trace_id={} span_id={} level={} time={} body={:?}",
                        i + 1,
                        ev.format.as_str(),
                        ev.trace_id.map_or("-".into(), |t| {
                            // A 64-bit id joins its trace on the low 64 bits (`join.id_match`).
                            if ev.trace_id_width == TraceIdWidth::Bits64 {
                                format!("{t}(64-bit)")
                            } else {
                                t.to_string()
                            }
                        }),
                        ev.span_id.map_or("-".into(), |s| s.to_string()),
                        ev.severity.as_deref().unwrap_or("-"),
                        if own_time { "record" } else { "kafka" },
                        ev.body,
                    );
                    let c = summary.counts(ev.format.as_str());
                    c.lines += 1;
                    c.trace_id += u64::from(ev.trace_id.is_some());
                    c.span_id += u64::from(ev.span_id.is_some());
                    c.level += u64::from(ev.severity.is_some());
                    c.time += u64::from(own_time);
                    summary.without_trace_id += u64::from(ev.trace_id.is_none());
                }
                if line_based {
                    explain(&decoder);
                } else {
                    println!("          (OTLP: ids, level and time are fields of the record)");
                }
            }
            Err(e) => {
                println!("line {:>3}: error {} ({e})", i + 1, e.code());
                summary.counts("error").lines += 1;
                summary.without_trace_id += 1;
            }
        }
    }
    print_summary(&summary);
    if require_trace_id && summary.without_trace_id > 0 {
        println!(
            "--require-trace-id: {} line(s) without a trace id",
            summary.without_trace_id
        );
        return Ok(false);
    }
    Ok(true)
}

/// Which rule or field gave each value of the line just decoded, and the captures rejected.
fn explain(decoder: &LogDecoder) {
    let rules = decoder.rules();
    let prov = decoder.last_provenance();
    let mut parts = Vec::new();
    for (name, src) in [
        ("trace_id", prov.trace_id),
        ("span_id", prov.span_id),
        ("level", prov.level),
        ("time", prov.timestamp),
    ] {
        if let Some(src) = src {
            parts.push(format!("{name} <- {}", rules.describe(src)));
        }
    }
    if parts.is_empty() {
        parts.push("no rule or field matched".into());
    }
    println!("          {}", parts.join("; "));
    for (src, value) in &prov.rejected {
        println!(
            "          rejected: {} captured {value:?}, not a well-formed id",
            rules.describe(*src)
        );
    }
}

fn print_summary(summary: &Summary) {
    if summary.formats.is_empty() {
        println!("no sample lines");
        return;
    }
    println!();
    println!(
        "{:<10} {:>6} {:>9} {:>8} {:>6} {:>6}",
        "format", "lines", "trace_id", "span_id", "level", "time"
    );
    let mut total = FormatCounts::default();
    for (format, c) in &summary.formats {
        println!(
            "{:<10} {:>6} {:>9} {:>8} {:>6} {:>6}",
            format, c.lines, c.trace_id, c.span_id, c.level, c.time
        );
        total.lines += c.lines;
        total.trace_id += c.trace_id;
        total.span_id += c.span_id;
        total.level += c.level;
        total.time += c.time;
    }
    println!(
        "{:<10} {:>6} {:>9} {:>8} {:>6} {:>6}",
        "total", total.lines, total.trace_id, total.span_id, total.level, total.time
    );
}
