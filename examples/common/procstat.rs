//! CPU time and peak memory of a process from /proc (Linux), shared by the examples that measure
//! cost (`load.rs`, `span_compare.rs`; included with `#[path]`). `pid` is a number or `self`.
//!
//! CPU is split by thread name because librdkafka names its threads `rdk:…` (`rdk:main`,
//! `rdk:broker1`, …): what the Kafka client costs can then be told apart from what the pipeline
//! around it costs. A thread that has exited is gone from `/proc/PID/task`, yet its time stays in
//! the process total, so the split reports it on its own instead of guessing its kind.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// Clock ticks per second of the `utime`/`stime` fields (`getconf CLK_TCK`; 100 on Linux unless
/// the kernel was built otherwise). Asked once, since the examples have no `libc` to call
/// `sysconf` with.
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The thread or process name (`comm`) and utime + stime in seconds of one `stat` file.
fn parse_stat(stat: &str) -> Option<(String, f64)> {
    // The name sits in parentheses and may itself hold spaces or ')': the fields after it start
    // after the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 counted from after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((name, (ticks(11)? + ticks(12)?) / clock_ticks()))
}

/// User + system CPU seconds of the whole process, exited threads included.
pub fn process_cpu_seconds(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0.0, |(_, secs)| secs)
}

/// CPU seconds of a process, split by thread kind.
#[derive(Debug, Clone, Default)]
pub struct CpuSplit {
    /// The process total (`/proc/PID/stat`).
    pub total: f64,
    /// Live librdkafka threads (`rdk:*`).
    pub librdkafka: f64,
    /// Every other live thread (tokio workers and blocking pool, main, …).
    pub other: f64,
    /// Live threads by name, librdkafka's included.
    pub by_name: BTreeMap<String, f64>,
}

impl CpuSplit {
    /// Time of threads no longer in `/proc/PID/task` (and rounding of the per-thread ticks).
    pub fn exited(&self) -> f64 {
        (self.total - self.librdkafka - self.other).max(0.0)
    }

    /// The change since `before`, for a phase of a longer-lived process.
    pub fn since(&self, before: &CpuSplit) -> CpuSplit {
        let mut by_name = self.by_name.clone();
        for (name, secs) in &before.by_name {
            if let Some(now) = by_name.get_mut(name) {
                *now = (*now - secs).max(0.0);
            }
        }
        CpuSplit {
            total: self.total - before.total,
            librdkafka: self.librdkafka - before.librdkafka,
            other: self.other - before.other,
            by_name,
        }
    }

    /// The live threads' time by name, largest first, as `name=seconds` pairs.
    pub fn by_name_line(&self) -> String {
        let mut named: Vec<(&String, &f64)> = self.by_name.iter().collect();
        named.sort_by(|a, b| b.1.total_cmp(a.1));
        named
            .iter()
            .filter(|(_, secs)| **secs >= 0.005)
            .map(|(name, secs)| format!("{name}={secs:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whether a thread belongs to librdkafka, by the names it gives its threads.
pub fn is_librdkafka_thread(name: &str) -> bool {
    name.starts_with("rdk:")
}

/// The process total and every live thread's CPU seconds.
pub fn cpu_split(pid: &str) -> CpuSplit {
    let mut split = CpuSplit {
        total: process_cpu_seconds(pid),
        ..CpuSplit::default()
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return split;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((name, secs)) = parse_stat(&stat) else {
            continue;
        };
        if is_librdkafka_thread(&name) {
            split.librdkafka += secs;
        } else {
            split.other += secs;
        }
        *split.by_name.entry(name).or_default() += secs;
    }
    split
}

/// A `kB` field of `/proc/PID/status` in KiB (0 when unreadable).
fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib(pid: &str) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Peak RSS in MiB, for printing.
pub fn peak_rss_mib(pid: &str) -> f64 {
    peak_rss_kib(pid) as f64 / 1024.0
}

/// Resets the process's peak RSS (VmHWM) to its current RSS (`echo 5 > /proc/PID/clear_refs`,
/// Linux 4.0+), so a later phase's peak is its own and not an earlier phase's. Whether it did.
pub fn reset_peak_rss(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}
