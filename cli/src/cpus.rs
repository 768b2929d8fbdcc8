//! CPU placement (`--cpus`): pin a validator or the load generator to some of the machine's
//! CPUs, so on a small machine the generator can be kept off the validators' cores.

use anyhow::{bail, Context, Result};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// CPU numbers from `0`, `0,2` or `0-3` (ranges and lists mixed).
pub fn parse(list: &str) -> Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .with_context(|| format!("--cpus {list:?}: {s:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    bail!("--cpus {list:?}: range {part} runs backwards");
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(num(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.is_empty() {
        bail!("--cpus is empty");
    }
    Ok(cpus)
}

/// Pins this process (its current thread and every thread it starts later) to `list`.
/// Call before any runtime or logging thread exists. Refuses CPUs this process may not use.
pub fn pin(list: &str) -> Result<Vec<usize>> {
    let cpus = parse(list)?;
    let allowed = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    let mut set = CpuSet::new();
    for &c in &cpus {
        if c >= CpuSet::count() || !allowed.is_set(c).unwrap_or(false) {
            bail!(
                "--cpus {list:?}: CPU {c} is not one this process may run on (allowed: {})",
                describe(&allowed)
            );
        }
        set.set(c).with_context(|| format!("CPU {c}"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set).context("sched_setaffinity")?;
    Ok(cpus)
}

fn describe(set: &CpuSet) -> String {
    let on: Vec<String> = (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c.to_string())
        .collect();
    on.join(",")
}

/// `node0=0,node1=0-1`: each validator's CPU list, checked.
pub fn parse_placement(spec: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    // A CPU list may itself hold commas: split at each `NAME=`.
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((n, l)) => out.push((n.trim().to_string(), l.trim().to_string())),
            None => match out.last_mut() {
                Some((_, l)) => {
                    l.push(',');
                    l.push_str(part);
                }
                None => bail!("--cpus {spec:?}: expected NODE=CPUS,..."),
            },
        }
    }
    for (n, l) in &out {
        parse(l).with_context(|| format!("--cpus: {n}"))?;
        if out.iter().filter(|(m, _)| m == n).count() > 1 {
            bail!("--cpus: {n} placed twice");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse("0").unwrap(), vec![0]);
        assert_eq!(parse("3,0-1,1").unwrap(), vec![0, 1, 3]);
        for bad in ["", "a", "2-1", "1,,2", "-1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placements_per_node() {
        assert_eq!(
            parse_placement("node0=0,node1=1,2,node2=0-1").unwrap(),
            vec![
                ("node0".to_string(), "0".to_string()),
                ("node1".to_string(), "1,2".to_string()),
                ("node2".to_string(), "0-1".to_string())
            ]
        );
        assert!(parse_placement("0,1").is_err());
        assert!(parse_placement("node0=x").is_err());
        assert!(parse_placement("node0=0,node0=1").is_err());
    }

    #[test]
    fn pinning_to_a_cpu_we_lack_is_refused() {
        let e = pin("100000").unwrap_err().to_string();
        assert!(e.contains("not one this process may run on"), "{e}");
    }
}
