//! node0's flame graphs of a step: its own, and the differential one against the step it is
//! compared with.

use super::StepResult;
use std::path::Path;

/// Writes node0's flame graph into the step dir; returns its file name.
pub(super) fn write_flame(report: &crate::LoadReport, dir: &Path, step: &str) -> Option<String> {
    let pb = report.resources.first()?.profile_pb.as_ref()?;
    let title = format!("{step}: node0 CPU, 99 Hz");
    match crate::profile::flamegraph(pb, &title) {
        Ok(svg) => {
            let name = "flame-node0.svg";
            std::fs::write(dir.join(name), svg).ok()?;
            Some(name.into())
        }
        Err(e) => {
            eprintln!("      no flame graph: {e:#}");
            None
        }
    }
}

/// Writes node0's differential flame graph from `reference`'s profile to this step's; returns
/// its file name and the reference step's name.
pub(super) fn write_diff_flame(
    reference: &StepResult,
    report: &crate::LoadReport,
    dir: &Path,
    step: &str,
) -> Option<(String, String)> {
    let before = reference.report.resources.first()?.profile_pb.as_ref()?;
    let after = report.resources.first()?.profile_pb.as_ref()?;
    let title = format!("{} -> {step}: node0 CPU, 99 Hz", reference.name);
    match crate::profile::diff_flamegraph(before, after, &title) {
        Ok(svg) => {
            let name = "flame-diff-node0.svg";
            std::fs::write(dir.join(name), svg).ok()?;
            Some((name.into(), reference.name.clone()))
        }
        Err(e) => {
            eprintln!("      no differential flame graph: {e:#}");
            None
        }
    }
}
