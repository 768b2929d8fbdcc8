//! The emulated network a testnet is made with: one link spec for every pair, or one-way
//! delays between named regions from a latency matrix (CSV) with each node placed in a region.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tpslab_types::link::{LinkSpec, MAX_DELAY};

/// One-way delays between regions: `delays[from][to]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyMatrix {
    /// Region names, in file order.
    pub regions: Vec<String>,
    delays: Vec<Vec<Duration>>,
}

impl LatencyMatrix {
    /// Reads a matrix file (see [`LatencyMatrix::parse`]).
    pub fn load(path: &Path) -> Result<LatencyMatrix> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read latency matrix {}", path.display()))?;
        LatencyMatrix::parse(&text).with_context(|| format!("latency matrix {}", path.display()))
    }

    /// CSV: a header `region,<r1>,<r2>,...`, then one row per region in the same order,
    /// `<ri>,<ms>,<ms>,...`: the one-way delay in milliseconds from the row's region to the
    /// column's (the diagonal is the delay within a region). `#` starts a comment line.
    pub fn parse(text: &str) -> Result<LatencyMatrix> {
        let mut rows = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split(',').map(str::trim).collect::<Vec<_>>());
        let header = rows.next().context("empty: expected a header row")?;
        let regions: Vec<String> = header.iter().skip(1).map(|s| s.to_string()).collect();
        if regions.is_empty() {
            bail!("the header names no region (expected `region,us-east,eu-west,...`)");
        }
        for (i, r) in regions.iter().enumerate() {
            if r.is_empty() || regions[..i].contains(r) {
                bail!("header: region {r:?} is empty or named twice");
            }
        }
        let mut delays = Vec::new();
        for (i, row) in rows.enumerate() {
            let Some(name) = regions.get(i) else {
                bail!("more rows than regions in the header");
            };
            if row.first() != Some(&name.as_str()) || row.len() != regions.len() + 1 {
                bail!(
                    "row {}: expected {name:?} followed by {} delays, got {:?}",
                    i + 1,
                    regions.len(),
                    row.join(",")
                );
            }
            let mut line = Vec::new();
            for (to, v) in regions.iter().zip(&row[1..]) {
                let ms: f64 = v
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                    .with_context(|| format!("{name} -> {to}: {v:?} is not a delay in ms"))?;
                let d = Duration::from_secs_f64(ms / 1e3);
                if d > MAX_DELAY {
                    bail!(
                        "{name} -> {to}: {ms} ms is over the {} s maximum",
                        MAX_DELAY.as_secs()
                    );
                }
                line.push(d);
            }
            delays.push(line);
        }
        if delays.len() != regions.len() {
            bail!(
                "{} regions in the header but {} rows",
                regions.len(),
                delays.len()
            );
        }
        Ok(LatencyMatrix { regions, delays })
    }

    /// The one-way delay from region `from` to region `to`.
    pub fn delay(&self, from: &str, to: &str) -> Option<Duration> {
        let i = self.regions.iter().position(|r| r == from)?;
        let j = self.regions.iter().position(|r| r == to)?;
        Some(self.delays[i][j])
    }
}

/// How the validators of a testnet are linked.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Links {
    /// Real links (loopback or whatever the hosts have).
    #[default]
    Real,
    /// The same emulated link between every pair.
    Uniform(LinkSpec),
    /// Per-pair delays from a matrix; `base` gives the rest (jitter, rate, loss).
    Matrix {
        /// The matrix.
        matrix: LatencyMatrix,
        /// Each node's region, by node name.
        regions: BTreeMap<String, String>,
        /// Jitter, rate and loss for every pair (its delay is replaced by the matrix's).
        base: LinkSpec,
        /// Where the matrix came from (for reports).
        source: String,
    },
}

impl Links {
    /// From `--link`, `--latency-matrix` and `--regions` as given to `testnet init`.
    pub fn from_args(
        link: Option<&str>,
        matrix: Option<&Path>,
        regions: Option<&str>,
    ) -> Result<Links> {
        let base: LinkSpec = match link {
            Some(s) => s.parse()?,
            None => LinkSpec::default(),
        };
        match (matrix, regions) {
            (None, None) if base.is_shaped() => Ok(Links::Uniform(base)),
            (None, None) => Ok(Links::Real),
            (Some(m), Some(r)) => {
                let matrix = LatencyMatrix::load(m)?;
                let regions = parse_regions(r)?;
                for (node, region) in &regions {
                    if !matrix.regions.contains(region) {
                        bail!(
                            "--regions: {node}={region}, but the matrix has only {}",
                            matrix.regions.join(", ")
                        );
                    }
                }
                Ok(Links::Matrix {
                    matrix,
                    regions,
                    base,
                    source: m.display().to_string(),
                })
            }
            (Some(_), None) => bail!("--latency-matrix needs --regions node0=REGION,..."),
            (None, Some(_)) => bail!("--regions needs --latency-matrix FILE"),
        }
    }

    /// The link from node `from` to node `to`, if emulated.
    pub fn between(&self, from: &str, to: &str) -> Option<LinkSpec> {
        match self {
            Links::Real => None,
            Links::Uniform(s) => Some(*s),
            Links::Matrix {
                matrix,
                regions,
                base,
                ..
            } => {
                let delay = matrix.delay(regions.get(from)?, regions.get(to)?)?;
                Some(LinkSpec { delay, ..*base })
            }
        }
    }

    /// Checks that every node has a region (a matrix testnet).
    pub fn check_nodes(&self, names: &[String]) -> Result<()> {
        if let Links::Matrix { regions, .. } = self {
            for n in names {
                if !regions.contains_key(n) {
                    bail!("--regions gives no region for {n}");
                }
            }
            for n in regions.keys() {
                if !names.contains(n) {
                    bail!("--regions: {n} is not a node of this testnet");
                }
            }
        }
        Ok(())
    }

    /// One line for reports and testnet.json (`None` for real links).
    pub fn describe(&self) -> Option<String> {
        match self {
            Links::Real => None,
            Links::Uniform(s) => Some(format!("every link {s}")),
            Links::Matrix {
                regions,
                base,
                source,
                ..
            } => {
                let placed: Vec<String> = regions.iter().map(|(n, r)| format!("{n}={r}")).collect();
                let extra = if *base == LinkSpec::default() {
                    String::new()
                } else {
                    format!(
                        ", with {}",
                        LinkSpec {
                            delay: Duration::ZERO,
                            ..*base
                        }
                    )
                };
                Some(format!(
                    "latency matrix {source} ({}){extra}",
                    placed.join(",")
                ))
            }
        }
    }
}

/// `node0=us-east,node1=eu-west`.
fn parse_regions(s: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (n, r) = part
            .split_once('=')
            .with_context(|| format!("--regions: {part:?} is not NODE=REGION"))?;
        if out
            .insert(n.trim().to_string(), r.trim().to_string())
            .is_some()
        {
            bail!("--regions: {n} placed twice");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "# one-way ms\nregion,a,b\na,1,40\nb,45,2\n";

    #[test]
    fn parses_a_matrix_and_places_nodes() {
        let m = LatencyMatrix::parse(M).unwrap();
        assert_eq!(m.delay("a", "b"), Some(Duration::from_millis(40)));
        assert_eq!(m.delay("b", "a"), Some(Duration::from_millis(45)));
        assert_eq!(m.delay("a", "c"), None);
        let links = Links::Matrix {
            matrix: m,
            regions: parse_regions("node0=a,node1=b,node2=b").unwrap(),
            base: "jitter=1ms".parse().unwrap(),
            source: "m.csv".into(),
        };
        assert_eq!(
            links.between("node0", "node1").unwrap().to_string(),
            "delay=40ms,jitter=1ms"
        );
        assert_eq!(
            links.between("node1", "node2").unwrap().delay,
            Duration::from_millis(2)
        );
        let names: Vec<String> = (0..3).map(|i| format!("node{i}")).collect();
        links.check_nodes(&names).unwrap();
        assert!(links.check_nodes(&names[..2]).is_err());
        assert!(links.describe().unwrap().contains("node0=a"));
    }

    #[test]
    fn bad_matrices_say_what_is_wrong() {
        for (text, needle) in [
            ("", "empty"),
            ("region\n", "no region"),
            ("region,a,a\na,1,1\na,1,1\n", "named twice"),
            ("region,a,b\na,1\nb,1,1\n", "row 1"),
            ("region,a,b\nb,1,1\na,1,1\n", "row 1"),
            ("region,a\na,x\n", "not a delay"),
            ("region,a\na,-1\n", "not a delay"),
            ("region,a\na,20000\n", "maximum"),
            ("region,a,b\na,1,1\n", "2 regions in the header but 1 rows"),
            ("region,a\na,1\nb,1\n", "more rows"),
        ] {
            let e = format!("{:#}", LatencyMatrix::parse(text).unwrap_err());
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../docs/latency-4regions.csv");
        let m = LatencyMatrix::parse(text).unwrap();
        assert_eq!(m.regions.len(), 4);
    }
}
