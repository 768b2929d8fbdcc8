//! Why probes could not be loaded or read.

/// A probe failure.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Loading BPF programs needs root (CAP_BPF and CAP_PERFMON).
    #[error("eBPF probes need root (running as uid {0})")]
    NotRoot(u32),
    /// No kernel BTF.
    #[error("eBPF probes need kernel BTF (/sys/kernel/btf/vmlinux is missing)")]
    NoBtf,
    /// tracefs is not mounted and could not be mounted.
    #[error("tracefs is not available at /sys/kernel/tracing: {0}")]
    NoTracefs(String),
    /// The eBPF object was not built into this binary.
    #[error("this tpslab was built without its eBPF programs: {0}")]
    NotBuilt(String),
    /// A tracepoint's record layout is not the one the programs read.
    #[error("tracepoint {event}: field {field} is at {found}, the probes read it at {expected}")]
    Layout {
        /// `category/name`.
        event: String,
        /// Field name.
        field: String,
        /// Offset the programs use.
        expected: usize,
        /// What the format file says.
        found: String,
    },
    /// Too many processes for one probe set.
    #[error("at most {max} processes can be probed at once, got {got}")]
    TooManyPids {
        /// Limit.
        max: u32,
        /// Asked for.
        got: usize,
    },
    /// A process to follow does not exist.
    #[error("no such process {0}")]
    NoProcess(u32),
    /// An unknown probe name.
    #[error("unknown probe `{0}` (known: runqlat, offcpu, syscalls, funclatency, net)")]
    UnknownProbe(String),
    /// The kernel refused something.
    #[error("{what}: {source}")]
    Kernel {
        /// What was being done.
        what: String,
        /// The error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ProbeError {
    pub(crate) fn kernel(
        what: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> ProbeError {
        ProbeError::Kernel {
            what: what.into(),
            source: Box::new(e),
        }
    }
}
