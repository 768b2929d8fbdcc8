//! Whether a process of the testnet (a validator, its Prometheus) still runs.

/// Whether `pid` is a live process; a zombie (exited, not yet reaped) counts as gone.
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}
