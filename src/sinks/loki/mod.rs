//! Grafana Loki sink (push API, protobuf + snappy). Being written.
