//! `experiment --compare A B`: two runs side by side, step by step.

use super::results::{ExperimentResults, RunInfo};
use anyhow::{bail, Result};

/// Side-by-side of two runs by step name; a >10% TPS drop or P99 rise is flagged. Refused
/// when the runs' parameters or CPU model differ (their rows would not measure the same
/// thing); a warning when their disks' fsync latency differs by more than 50%, or their
/// CPUs' signature checks by more than 25% (hosts reporting one CPU model have differed 2x).
pub fn compare(a: &ExperimentResults, b: &ExperimentResults) -> Result<String> {
    refuse_unlike(&a.info, &b.info)?;
    let mut s = format!(
        "A: {} on {} ({} CPUs), {} tx/s\nB: {} on {} ({} CPUs), {} tx/s\n\n",
        a.info.version,
        a.info.cpu,
        a.info.cpus,
        a.info.rate,
        b.info.version,
        b.info.cpu,
        b.info.cpus,
        b.info.rate
    );
    if let (Some((fa, _)), Some((fb, _))) = (a.info.fsync_us, b.info.fsync_us) {
        if (fa - fb).abs() > 0.5 * fa.min(fb) {
            s.push_str(&format!(
                "warning: the disks differ: fsync P50 {fa:.0} us (A) vs {fb:.0} us (B); steps with per-tx syncs are not comparable\n\n"
            ));
        }
    }
    if let (Some((_, va)), Some((_, vb))) = (a.info.verify_us, b.info.verify_us) {
        if (va - vb).abs() > 0.25 * va.min(vb) {
            s.push_str(&format!(
                "warning: the CPUs differ: a transfer's batched signature check costs {va:.1} us (A) vs {vb:.1} us (B); the tuned steps' TPS follow it\n\n"
            ));
        }
    }
    s.push_str("| step | TPS A | TPS B | change | P99 A | P99 B | change | flag |\n|---|---|---|---|---|---|---|---|\n");
    let pct = |x: f64, y: f64| if x > 0.0 { 100.0 * (y - x) / x } else { 0.0 };
    let mut regressions = 0;
    for sa in &a.steps {
        let Some(sb) = b
            .steps
            .iter()
            .find(|s| s.name == sa.name && s.engine == sa.engine)
        else {
            continue;
        };
        let dt = pct(sa.tps, sb.tps);
        let dp = pct(sa.p99_ms, sb.p99_ms);
        let flag = if dt < -10.0 || dp > 10.0 {
            regressions += 1;
            "REGRESSION"
        } else {
            ""
        };
        s.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:+.1}% | {:.0} | {:.0} | {:+.1}% | {} |\n",
            a.label(sa),
            sa.tps,
            sb.tps,
            dt,
            sa.p99_ms,
            sb.p99_ms,
            dp,
            flag
        ));
    }
    s.push_str(&format!(
        "\n{regressions} step(s) regressed by more than 10% from A to B\n"
    ));
    Ok(s)
}

/// An error naming the first parameter (or the CPU model) in which two runs differ.
fn refuse_unlike(a: &RunInfo, b: &RunInfo) -> Result<()> {
    let secs = |s: f64| format!("{s}s");
    let fields = [
        ("CPU model", a.cpu.clone(), b.cpu.clone()),
        (
            "validators",
            a.validators.to_string(),
            b.validators.to_string(),
        ),
        ("rate", a.rate.to_string(), b.rate.to_string()),
        ("duration", secs(a.duration_secs), secs(b.duration_secs)),
        ("warmup", secs(a.warmup_secs), secs(b.warmup_secs)),
        ("tx size", a.tx_size.to_string(), b.tx_size.to_string()),
        ("accounts", a.accounts.to_string(), b.accounts.to_string()),
        (
            "block interval",
            a.block_interval_ms.to_string(),
            b.block_interval_ms.to_string(),
        ),
    ];
    match fields.iter().find(|(_, x, y)| x != y) {
        Some((what, x, y)) => bail!(
            "the runs differ in {what} ({x} vs {y}): their steps do not measure the same thing"
        ),
        None => Ok(()),
    }
}
