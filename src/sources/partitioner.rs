//! The partitioners producers use, to check that a keyed record sits where its key says.
//!
//! Co-partitioning needs both topics' producers to hash trace ids alike. They often do not:
//! Java clients and franz-go use murmur2, librdkafka (and so confluent-kafka) CRC32 by default
//! (`consistent_random`), sarama and the Collector's Kafka exporter FNV-1a. A record whose key
//! hashes elsewhere under the configured partitioner is counted
//! (`tracejoin_partition_key_mismatch_total`) and logged once per topic.

use serde::Deserialize;

/// A producer's partitioner.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// Do not check.
    #[default]
    None,
    /// Java client / Kafka Streams default: murmur2, positive, modulo.
    Murmur2,
    /// librdkafka default: CRC32 of the key, modulo.
    Crc32,
    /// sarama's hash partitioner: FNV-1a 32, absolute value, modulo.
    Fnv1a,
}

impl Partitioner {
    /// The partition of `key` among `partitions`; `None` when not checking.
    pub fn partition(self, key: &[u8], partitions: i32) -> Option<i32> {
        if partitions <= 0 {
            return None;
        }
        let n = partitions as u32;
        Some(match self {
            Partitioner::None => return None,
            Partitioner::Murmur2 => ((murmur2(key) & 0x7fff_ffff) as u32 % n) as i32,
            Partitioner::Crc32 => (crc32(key) % n) as i32,
            Partitioner::Fnv1a => {
                let h = fnv1a(key) as i32;
                (h.unsigned_abs() % n) as i32
            }
        })
    }
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ len as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// CRC-32 (IEEE), as librdkafka's `rd_crc32`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// FNV-1a, 32 bit.
pub fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn crc32_and_fnv_reference_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
    }

    #[test]
    fn partitions_are_in_range() {
        for p in [Partitioner::Murmur2, Partitioner::Crc32, Partitioner::Fnv1a] {
            for key in [&b"4bf92f3577b34da6a3ce929d0e0e4736"[..], b"", b"x"] {
                let n = p.partition(key, 7).unwrap();
                assert!((0..7).contains(&n));
            }
        }
        assert_eq!(Partitioner::None.partition(b"k", 3), None);
    }
}
