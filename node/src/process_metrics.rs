//! The node process's own RSS and CPU time on `/metrics` (the standard
//! `process_resident_memory_bytes` and `process_cpu_seconds_total`), read from /proc at scrape
//! time, for alerts on memory growth and for a canary's CPU compared with its peers'.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Clock ticks per second of /proc times (USER_HZ, 100 on every mainstream Linux).
const USER_HZ: f64 = 100.0;

/// The two metrics.
#[derive(Clone, Default)]
pub struct ProcessMetrics {
    rss: Gauge<u64, AtomicU64>,
    cpu: Counter<f64, AtomicU64>,
}

impl ProcessMetrics {
    /// Adds the metrics to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            self.rss.clone(),
        );
        r.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            self.cpu.clone(),
        );
    }

    /// Brings both up to /proc's figures (left as they are where /proc is unreadable).
    pub fn update(&self) {
        if let Some(kb) = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| vm_rss_kb(&s))
        {
            self.rss.set(kb * 1024);
        }
        if let Some(secs) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_secs(&s))
        {
            let have = self.cpu.get();
            if secs > have {
                self.cpu.inc_by(secs - have);
            }
        }
    }
}

fn vm_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_secs(stat: &str) -> Option<f64> {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_and_cpu_parse_from_proc_text() {
        assert_eq!(super::vm_rss_kb("Name: x\nVmRSS:\t  2048 kB\n"), Some(2048));
        let stat = "42 (tpslab node) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0";
        assert_eq!(super::cpu_secs(stat), Some(2.0));
        assert_eq!(super::cpu_secs("garbage"), None);
    }
}
