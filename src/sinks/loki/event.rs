//! Loki's wire formats: the protobuf `PushRequest` (hand-written prost messages with the field
//! numbers of Loki's `pkg/push/push.proto`), the JSON push body, the label-set string, and the
//! JSON lines a rejected batch becomes for the dead-letter topic.
//!
//! ```proto
//! message PushRequest      { repeated StreamAdapter streams = 1; }
//! message StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! message EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//!                            repeated LabelPairAdapter structuredMetadata = 3; }
//! message LabelPairAdapter { string name = 1; string value = 2; }
//! message Timestamp        { int64 seconds = 1; int32 nanos = 2; }
//! ```
//! The label string is Loki's (and Prometheus') `{name="value", name2="value2"}`: values quoted
//! with Go escapes, which both Loki's LogQL parser and VictoriaLogs' `strconv.Unquote` read back.
//! `hash` is left 0: Loki computes it from the labels.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use std::fmt::Write as _;

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PushRequest {
    /// The streams, one per label set.
    #[prost(message, repeated, tag = "1")]
    pub(crate) streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StreamAdapter {
    /// `{name="value", …}`.
    #[prost(string, tag = "1")]
    pub(crate) labels: String,
    /// The entries, in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub(crate) entries: Vec<EntryAdapter>,
    /// Left 0.
    #[prost(uint64, tag = "3")]
    pub(crate) hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EntryAdapter {
    /// Event time.
    #[prost(message, optional, tag = "1")]
    pub(crate) timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub(crate) line: String,
    /// `structuredMetadata`.
    #[prost(message, repeated, tag = "3")]
    pub(crate) structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LabelPairAdapter {
    /// Name.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub(crate) value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct Timestamp {
    /// Seconds since the epoch.
    #[prost(int64, tag = "1")]
    pub(crate) seconds: i64,
    /// Nanoseconds within the second, 0..1e9.
    #[prost(int32, tag = "2")]
    pub(crate) nanos: i32,
}

impl Timestamp {
    pub(crate) fn from_unix_nanos(ns: i64) -> Self {
        Timestamp {
            seconds: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }
    pub(crate) fn unix_nanos(self) -> i64 {
        self.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(self.nanos as i64)
    }
}

/// Appends `"value"` with Go string-literal escapes (what `strconv.Unquote` and LogQL read).
pub(crate) fn write_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `{a="x", b="y"}` for the pairs, in order, into `out` (cleared first).
pub(crate) fn write_label_string<N: AsRef<str>, V: AsRef<str>>(
    out: &mut String,
    pairs: impl IntoIterator<Item = (N, V)>,
) {
    out.clear();
    out.push('{');
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name.as_ref());
        out.push('=');
        write_quoted(out, value.as_ref());
    }
    out.push('}');
}

/// The label pairs of a stream, for the JSON forms.
pub(crate) type LabelPairs = [(std::sync::Arc<str>, String)];

struct PairsMap<'a>(&'a LabelPairs);
impl Serialize for PairsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(&**k, v)?;
        }
        m.end()
    }
}

struct MetadataMap<'a>(&'a [LabelPairAdapter]);
impl Serialize for MetadataMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for p in self.0 {
            m.serialize_entry(&p.name, &p.value)?;
        }
        m.end()
    }
}

struct Values<'a>(&'a [EntryAdapter]);
impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            let ns = e.timestamp.unwrap_or_default().unix_nanos().to_string();
            if e.structured_metadata.is_empty() {
                seq.serialize_element(&(ns, &e.line))?;
            } else {
                seq.serialize_element(&(ns, &e.line, MetadataMap(&e.structured_metadata)))?;
            }
        }
        seq.end()
    }
}

/// Writes Loki's JSON push body for `streams`, whose label pairs are `pairs[i]`.
pub(crate) fn write_json_push(
    streams: &[StreamAdapter],
    pairs: &[Vec<(std::sync::Arc<str>, String)>],
    out: &mut Vec<u8>,
) {
    struct Streams<'a>(
        &'a [StreamAdapter],
        &'a [Vec<(std::sync::Arc<str>, String)>],
    );
    impl Serialize for Streams<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for (st, p) in self.0.iter().zip(self.1) {
                struct One<'a>(&'a StreamAdapter, &'a LabelPairs);
                impl Serialize for One<'_> {
                    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        let mut m = s.serialize_map(Some(2))?;
                        m.serialize_entry("stream", &PairsMap(self.1))?;
                        m.serialize_entry("values", &Values(&self.0.entries))?;
                        m.end()
                    }
                }
                seq.serialize_element(&One(st, p))?;
            }
            seq.end()
        }
    }
    let mut ser = serde_json::Serializer::new(out);
    let r = (|| {
        let mut m = ser.serialize_map(Some(1))?;
        m.serialize_entry("streams", &Streams(streams, pairs))?;
        SerializeMap::end(m)
    })();
    // Serialising strings into a Vec cannot fail.
    debug_assert!(r.is_ok());
}

/// One entry as a dead-letter JSON line (newline-terminated):
/// `{"tenant":…,"labels":{…},"timestamp":"<ns>","line":"…","structured_metadata":{…},
///   "origin":{"topic":1,"partition":0,"offset":17}}`.
pub(crate) fn write_dead_letter_line(
    tenant: Option<&str>,
    labels: &LabelPairs,
    entry: &EntryAdapter,
    origin: crate::model::Origin,
    out: &mut Vec<u8>,
) {
    #[derive(Serialize)]
    struct O {
        topic: u16,
        partition: i32,
        offset: i64,
    }
    let mut ser = serde_json::Serializer::new(&mut *out);
    let r = (|| {
        let mut m = ser.serialize_map(None)?;
        if let Some(t) = tenant {
            m.serialize_entry("tenant", t)?;
        }
        m.serialize_entry("labels", &PairsMap(labels))?;
        let ns = entry.timestamp.unwrap_or_default().unix_nanos().to_string();
        m.serialize_entry("timestamp", &ns)?;
        m.serialize_entry("line", &entry.line)?;
        m.serialize_entry(
            "structured_metadata",
            &MetadataMap(&entry.structured_metadata),
        )?;
        m.serialize_entry(
            "origin",
            &O {
                topic: origin.topic,
                partition: origin.partition,
                offset: origin.offset,
            },
        )?;
        SerializeMap::end(m)
    })();
    debug_assert!(r.is_ok());
    out.push(b'\n');
}
