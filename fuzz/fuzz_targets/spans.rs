//! Span records: arbitrary bytes as OTLP protobuf and as OTLP/JSON.
//!
//! Besides "never panics", checks what the decoder promises its callers: every span it yields
//! has a valid (non-zero) trace and span id, and a record that fails to decode yields nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracejoin::decode::otlp::SpanDecoder;

fuzz_target!(|data: &[u8]| {
    let keep = [
        "http.route".to_string(),
        "http.response.status_code".to_string(),
    ];
    // A small interner cap, so that its "full" path runs too.
    let mut decoder = SpanDecoder::new(&keep, 4);
    let mut out = Vec::new();
    for json in [false, true] {
        out.clear();
        let result = if json {
            decoder.decode_json(data, &mut out)
        } else {
            decoder.decode_proto(data, &mut out)
        };
        match result {
            Ok(_) => {
                for s in &out {
                    assert!(s.trace_id.0 != [0; 16], "all-zero trace id yielded");
                    assert!(s.span_id.0 != [0; 8], "all-zero span id yielded");
                    assert!(s.start_unix_nanos >= 0 && s.end_unix_nanos >= 0);
                    let _ = (s.duration_nanos(), s.approx_bytes(), s.trace_id.to_hex());
                }
            }
            Err(e) => {
                assert!(out.is_empty(), "a failed record yielded spans");
                let _ = (e.code(), e.to_string());
            }
        }
    }
});
