//! The probe families `--probe` selects.

use crate::ProbeError;
use serde::{Deserialize, Serialize};

/// One family of probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Run-queue latency (sched_wakeup, sched_wakeup_new, sched_switch), bcc runqlat's
    /// definition: from wakeup or preemption to running.
    Runqlat,
    /// Off-CPU time by state at switch-out (sleeping vs blocked), and on-CPU time.
    Offcpu,
    /// Counts and latency of every syscall (raw_syscalls sys_enter/sys_exit).
    Syscalls,
    /// uprobe/uretprobe latency of the node's `tpslab_probe_*` functions, and one ring-buffer
    /// record per committed block.
    Funclatency,
    /// Packets received in the process's context, TCP retransmits, direct reclaim.
    Net,
}

impl ProbeKind {
    /// Every family.
    pub const ALL: [ProbeKind; 5] = [
        ProbeKind::Runqlat,
        ProbeKind::Offcpu,
        ProbeKind::Syscalls,
        ProbeKind::Funclatency,
        ProbeKind::Net,
    ];

    /// The family's name.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Runqlat => "runqlat",
            ProbeKind::Offcpu => "offcpu",
            ProbeKind::Syscalls => "syscalls",
            ProbeKind::Funclatency => "funclatency",
            ProbeKind::Net => "net",
        }
    }

    /// Parses a comma-separated list (`all` = every family).
    pub fn parse_list(s: &str) -> Result<Vec<ProbeKind>, ProbeError> {
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                return Ok(ProbeKind::ALL.to_vec());
            }
            let k = ProbeKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| ProbeError::UnknownProbe(name.to_string()))?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_unknown_names_are_refused() {
        assert_eq!(ProbeKind::parse_list("all").unwrap().len(), 5);
        assert_eq!(
            ProbeKind::parse_list("runqlat, syscalls,runqlat").unwrap(),
            vec![ProbeKind::Runqlat, ProbeKind::Syscalls]
        );
        assert!(matches!(
            ProbeKind::parse_list("runqlat,kprobes"),
            Err(ProbeError::UnknownProbe(n)) if n == "kprobes"
        ));
    }
}
