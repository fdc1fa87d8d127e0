//! Rules files: arbitrary UTF-8 as `rules/extract.yaml`, compiled, then applied to fixed lines.
//!
//! A rules file is operator input, not traffic, but a typo in it must be an error that names the
//! rule, never a panic at startup or on the first line it meets.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use tracejoin::decode::logline::{InputLogFormat, LogDecoder};
use tracejoin::decode::rules::ExtractRules;
use tracejoin::model::Origin;

const LINES: &[&str] = &[
    r#"{"timestamp":"2023-11-14T22:13:20.123Z","level":"ERROR","message":"db timeout","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","service":"checkout"}"#,
    r#"{"msg":"x","trace":{"id":"4bf92f3577b34da6a3ce929d0e0e4736"},"dd":{"trace_id":"1234567890123456789"}}"#,
    r#"{"message":"traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","a":[1,{"b":null}]}"#,
    r#"ts=1700000000.5 level=warn msg="slow \"query\" é" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7"#,
    r#"time=2023-11-14T22:13:20Z lvl=info traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 x"#,
    "2023-11-14 22:13:20,123 ERROR [checkout] payment failed trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
    "2024-05-01T12:00:00Z INFO dd.trace_id=1234567890123456789 dd.span_id=42 done",
    "[warn] X-Ray 1-5759e988-bd862e3fe1be46a994272793 naïve ünïcode ✓",
    "",
];

const FORMATS: [InputLogFormat; 4] = [
    InputLogFormat::Auto,
    InputLogFormat::Json,
    InputLogFormat::Logfmt,
    InputLogFormat::Text,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = match ExtractRules::parse(text, "fuzz.yaml") {
        Ok(r) => r,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let compiled = match rules.compile() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let mut decoder = LogDecoder::new(Arc::new(compiled), 16);
    let origin = Origin {
        topic: 1,
        partition: 0,
        offset: 0,
    };
    let mut out = Vec::new();
    for line in LINES {
        for format in FORMATS {
            out.clear();
            let _ = decoder.decode(
                Bytes::from_static(line.as_bytes()),
                format,
                origin,
                1_700_000_000_000_000_000,
                &mut out,
            );
        }
    }
});
