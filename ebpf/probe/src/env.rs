//! What the machine must offer before programs are loaded: root, BTF, tracefs, the memlock
//! limit, and tracepoint record layouts matching the offsets the programs read.

use crate::ProbeError;
use std::path::Path;

const TRACEFS: &str = "/sys/kernel/tracing";

/// Whether probes can run here; the error is one line a user can act on.
pub fn available() -> Result<(), ProbeError> {
    let uid = euid();
    if uid != 0 {
        return Err(ProbeError::NotRoot(uid));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(ProbeError::NoBtf);
    }
    let reason = env!("TPSLAB_PROBES_BUILD_ERROR");
    if !reason.is_empty() {
        return Err(ProbeError::NotBuilt(reason.to_string()));
    }
    ensure_tracefs()
}

fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

fn ensure_tracefs() -> Result<(), ProbeError> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let out = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .output()
        .map_err(|e| ProbeError::NoTracefs(format!("running mount: {e}")))?;
    if Path::new(TRACEFS).join("events").is_dir() {
        Ok(())
    } else {
        Err(ProbeError::NoTracefs(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Lifts the locked-memory limit (kernels before 5.11 charge BPF maps to it).
pub(crate) fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct; failure only means newer accounting.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

/// The fields the programs read, at the offsets they read them (see `ebpf/probes`).
const LAYOUT: &[(&str, &str, usize)] = &[
    ("sched/sched_switch", "prev_pid", 24),
    ("sched/sched_switch", "prev_state", 32),
    ("sched/sched_switch", "next_pid", 56),
    ("sched/sched_wakeup", "pid", 24),
    ("sched/sched_wakeup_new", "pid", 24),
    ("raw_syscalls/sys_exit", "id", 8),
];

/// Checks every field the programs read against the tracepoint format files.
pub(crate) fn check_layout() -> Result<(), ProbeError> {
    for (event, field, expected) in LAYOUT {
        let path = Path::new(TRACEFS).join("events").join(event).join("format");
        let text = std::fs::read_to_string(&path).map_err(|e| ProbeError::Layout {
            event: event.to_string(),
            field: field.to_string(),
            expected: *expected,
            found: format!("unreadable format file: {e}"),
        })?;
        let found = field_offset(&text, field);
        if found != Some(*expected) {
            return Err(ProbeError::Layout {
                event: event.to_string(),
                field: field.to_string(),
                expected: *expected,
                found: found.map_or("missing".into(), |o| o.to_string()),
            });
        }
    }
    Ok(())
}

/// The offset of `field` in a tracefs format file.
fn field_offset(format: &str, field: &str) -> Option<usize> {
    format.lines().find_map(|l| {
        let l = l.trim();
        let decl = l.strip_prefix("field:")?.split(';').next()?;
        let name = decl.split_whitespace().last()?.split('[').next()?;
        if name != field {
            return None;
        }
        let off = l.split("offset:").nth(1)?.split(';').next()?;
        off.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn format_offsets_parse() {
        let f = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
                 \tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
                 \tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n";
        assert_eq!(super::field_offset(f, "prev_pid"), Some(24));
        assert_eq!(super::field_offset(f, "prev_comm"), Some(8));
        assert_eq!(super::field_offset(f, "next_pid"), None);
    }
}
