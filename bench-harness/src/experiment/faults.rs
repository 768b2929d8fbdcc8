//! `experiment --perturb`: which faults a step gets, binding them to its testnet, and
//! printing what they did.

use crate::perturb::{Action, Fault, Perturb, Schedule};
use anyhow::Result;
use std::path::PathBuf;
use tpslab_testnet::TestnetFile;
use tpslab_types::Tuning;

/// The faults a step gets: all of `schedule`, except kills and restarts when write-batch is
/// off (the naive path writes a block in several synced writes, so a SIGKILL mid-block
/// leaves a half-applied block: not crash-atomic, by design of that baseline). Returns the
/// step's schedule (None if nothing is left) and the labels of the faults skipped.
pub(super) fn step_schedule(
    schedule: &Schedule,
    tuning: &Tuning,
) -> (Option<Schedule>, Vec<String>) {
    let (keep, skip): (Vec<Fault>, Vec<Fault>) =
        schedule.0.iter().cloned().partition(|f| {
            tuning.write_batch || !matches!(f.action, Action::Kill | Action::Restart)
        });
    let skipped = skip.iter().map(Fault::label).collect();
    ((!keep.is_empty()).then_some(Schedule(keep)), skipped)
}

/// Whether `schedule` cuts a node off (the testnet then needs the fault endpoint).
pub(super) fn disconnects(schedule: &Schedule) -> bool {
    schedule
        .0
        .iter()
        .any(|f| matches!(f.action, Action::Disconnect { .. }))
}

/// The load targets and the faults bound to `file`'s nodes: the load goes to the nodes no
/// fault touches.
pub(super) fn bind(
    schedule: Option<Schedule>,
    file: &TestnetFile,
    exe: PathBuf,
) -> Result<(Vec<String>, Option<Perturb>)> {
    let Some(schedule) = schedule else {
        return Ok((
            file.nodes.iter().map(|n| n.grpc_addr.clone()).collect(),
            None,
        ));
    };
    let p = Perturb {
        schedule,
        nodes: file.nodes.clone(),
        exe,
    };
    p.check()?;
    let targets = p.untouched().iter().map(|n| n.grpc_addr.clone()).collect();
    Ok((targets, Some(p)))
}

/// Prints what each fault did to the step, and the faults it did not get.
pub(super) fn print(report: &crate::LoadReport, skipped: &[String]) {
    for f in &report.faults {
        eprintln!(
            "      {}: pre-fault {} TPS, dip {} TPS, recovered after {}{}",
            f.fault,
            f.pre_tps.map_or("-".into(), |v| format!("{v:.0}")),
            f.dip_tps.map_or("-".into(), |v| v.to_string()),
            f.recovered_after_secs
                .map_or("no recovery in the window".into(), |v| format!("{v} s")),
            f.error
                .as_ref()
                .map(|e| format!(" (not applied: {e})"))
                .unwrap_or_default()
        );
    }
    if !skipped.is_empty() {
        eprintln!(
            "      skipped (write-batch off, the naive commit is not crash-atomic): {}",
            skipped.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_write_path_steps_get_no_kills() {
        let s: Schedule = "kill:node3@2s,restart:node3@4s,pause:node2@5s-6s"
            .parse()
            .unwrap();
        let tuned = Tuning::default();
        let (all, skipped) = step_schedule(&s, &tuned);
        assert_eq!(all.unwrap().0.len(), 3);
        assert!(skipped.is_empty());
        let naive = Tuning {
            write_batch: false,
            ..Tuning::default()
        };
        let (some, skipped) = step_schedule(&s, &naive);
        assert_eq!(some.unwrap().0.len(), 1);
        assert_eq!(skipped, ["kill:node3@2s", "restart:node3@4s"]);
        let only_kills: Schedule = "kill:node3@2s".parse().unwrap();
        assert!(step_schedule(&only_kills, &naive).0.is_none());
    }
}
