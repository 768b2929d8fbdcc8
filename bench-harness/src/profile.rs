//! CPU profiles from nodes (`tpslab profile`): fetch a pprof protobuf and a flame graph from
//! each node's `/debug/pprof/profile`, and compare two profiles by function (self and total
//! share of samples, and how each moved), the seed article's cross-environment comparison.

use crate::http::http_get_bytes;
use anyhow::{Context, Result};
use pprof::protos::{Message, Profile};
use std::collections::HashMap;
use std::time::Duration;

/// Fetches a profile of `seconds` at `frequency` Hz from the node whose metrics server is at
/// `metrics_addr`; `svg` asks for a flame graph instead of the protobuf.
pub async fn fetch(metrics_addr: &str, seconds: u64, frequency: u32, svg: bool) -> Result<Vec<u8>> {
    let path = format!(
        "/debug/pprof/profile?seconds={seconds}&frequency={frequency}{}",
        if svg { "&format=svg" } else { "" }
    );
    http_get_bytes(metrics_addr, &path, Duration::from_secs(seconds + 30))
        .await
        .with_context(|| format!("profiling {metrics_addr}"))
}

/// One function's share of a profile's samples.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FunctionShare {
    /// Function name (demangled).
    pub name: String,
    /// Fraction of samples where it is the leaf (its own code).
    pub self_share: f64,
    /// Fraction of samples where it is anywhere on the stack.
    pub total_share: f64,
}

/// `pb` gzip-compressed, as pprof's own tools write profiles (`.pb.gz`).
pub fn gzip(pb: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(pb)?;
    Ok(enc.finish()?)
}

/// The raw protobuf of a profile that may be gzip-compressed.
fn gunzipped(pb: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    use std::io::Read;
    if !pb.starts_with(&[0x1f, 0x8b]) {
        return Ok(std::borrow::Cow::Borrowed(pb));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(pb)
        .read_to_end(&mut out)
        .context("not a valid gzip stream")?;
    Ok(std::borrow::Cow::Owned(out))
}

/// Whether a frame is the profiler's own stack walk. pprof-rs trims its signal handler, but
/// in a build without inlining the unwinder it calls (`backtrace::...`) stays on top of every
/// stack and would be every sample's "self" function.
fn is_profiler_frame(name: &str) -> bool {
    name.starts_with("backtrace::") || name.starts_with("pprof::") || name.starts_with("<pprof::")
}

/// A decoded profile's samples: (count, function names leaf first, inlined frames expanded),
/// with the profiler's own frames taken off the top.
fn samples(pb: &[u8]) -> Result<Vec<(i64, Vec<String>)>> {
    let pb = gunzipped(pb)?;
    let p = Profile::decode(&*pb).context("not a pprof protobuf profile")?;
    let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
    let fn_name: HashMap<u64, String> = p.function.iter().map(|f| (f.id, s(f.name))).collect();
    // Each location's function names, innermost inlined frame first.
    let loc_fns: HashMap<u64, Vec<&String>> = p
        .location
        .iter()
        .map(|l| {
            let names = l
                .line
                .iter()
                .filter_map(|line| fn_name.get(&line.function_id))
                .collect();
            (l.id, names)
        })
        .collect();
    Ok(p.sample
        .iter()
        .map(|sample| {
            let n = sample.value.first().copied().unwrap_or(1);
            let frames: Vec<String> = sample
                .location_id
                .iter()
                .flat_map(|loc| loc_fns.get(loc).into_iter().flatten())
                .skip_while(|name| is_profiler_frame(name))
                .map(|name| name.to_string())
                .collect();
            (n, frames)
        })
        .collect())
}

/// A profile's samples as folded stacks (`root;...;leaf count`, as `flamegraph.pl` takes
/// them).
pub fn folded(pb: &[u8]) -> Result<Vec<String>> {
    let mut folded: HashMap<String, i64> = HashMap::new();
    for (n, mut frames) in samples(pb)? {
        if !frames.is_empty() {
            frames.reverse();
            *folded.entry(frames.join(";")).or_default() += n;
        }
    }
    anyhow::ensure!(!folded.is_empty(), "the profile has no samples");
    let mut lines: Vec<String> = folded.iter().map(|(k, v)| format!("{k} {v}")).collect();
    lines.sort_unstable();
    Ok(lines)
}

fn draw(lines: &[String], opts: &mut inferno::flamegraph::Options<'_>) -> Result<String> {
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(opts, lines.iter().map(String::as_str), &mut svg)
        .context("drawing the flame graph")?;
    String::from_utf8(svg).context("flame graph is not UTF-8")
}

/// A flame graph (SVG, drawn by inferno) of a pprof profile.
pub fn flamegraph(pb: &[u8], title: &str) -> Result<String> {
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    draw(&folded(pb)?, &mut opts)
}

/// A differential flame graph from `before` to `after` (Gregg's red/blue): frames are sized by
/// `after`, red where their share grew, blue where it shrank. `before` is scaled to `after`'s
/// sample count, so two profiles of different length or load compare by share.
pub fn diff_flamegraph(before: &[u8], after: &[u8], title: &str) -> Result<String> {
    let (a, b) = (folded(before)?.join("\n"), folded(after)?.join("\n"));
    let mut out = Vec::new();
    let opts = inferno::differential::Options {
        normalize: true,
        strip_hex: false,
    };
    inferno::differential::from_readers(opts, a.as_bytes(), b.as_bytes(), &mut out)
        .context("folding the two profiles together")?;
    let lines: Vec<String> = String::from_utf8(out)
        .context("differential stacks are not UTF-8")?
        .lines()
        .map(str::to_string)
        .collect();
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_string();
    opts.subtitle = Some("red: more of the samples than before, blue: fewer".to_string());
    draw(&lines, &mut opts)
}

/// Decodes a pprof protobuf (raw or gzipped) and returns each function's self and total
/// share, by self share.
pub fn functions(pb: &[u8]) -> Result<Vec<FunctionShare>> {
    let mut selfc: HashMap<String, i64> = HashMap::new();
    let mut totalc: HashMap<String, i64> = HashMap::new();
    let mut all = 0i64;
    for (n, frames) in samples(pb)? {
        all += n;
        if let Some(leaf) = frames.first() {
            *selfc.entry(leaf.clone()).or_default() += n;
        }
        let mut seen = std::collections::HashSet::new();
        for name in frames {
            if seen.insert(name.clone()) {
                *totalc.entry(name).or_default() += n;
            }
        }
    }
    let all = all.max(1) as f64;
    let mut out: Vec<FunctionShare> = totalc
        .into_iter()
        .map(|(name, t)| FunctionShare {
            self_share: *selfc.get(&name).unwrap_or(&0) as f64 / all,
            total_share: t as f64 / all,
            name,
        })
        .collect();
    out.sort_by(|a, b| {
        b.self_share
            .total_cmp(&a.self_share)
            .then(a.name.cmp(&b.name))
    });
    Ok(out)
}

/// The `top` functions whose self share moved most from `a` to `b`: (name, in a, in b).
pub fn moved(
    a: &[FunctionShare],
    b: &[FunctionShare],
    top: usize,
) -> Vec<(String, FunctionShare, FunctionShare)> {
    let find =
        |v: &[FunctionShare], n: &str| v.iter().find(|f| f.name == n).cloned().unwrap_or_default();
    let mut names: Vec<&str> = a.iter().chain(b).map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut rows: Vec<(String, FunctionShare, FunctionShare)> = names
        .into_iter()
        .map(|n| (n.to_string(), find(a, n), find(b, n)))
        .collect();
    rows.sort_by(|x, y| {
        let dx = (x.2.self_share - x.1.self_share).abs();
        let dy = (y.2.self_share - y.1.self_share).abs();
        dy.total_cmp(&dx).then(x.0.cmp(&y.0))
    });
    rows.truncate(top);
    rows
}

/// The `top` functions whose self share moved most from `a` to `b`, as a table.
pub fn diff(a: &[FunctionShare], b: &[FunctionShare], top: usize) -> String {
    let rows = moved(a, b, top);
    let mut s = String::from(
        "| function | self A | self B | change | total A | total B |\n|---|---|---|---|---|---|\n",
    );
    for (name, fa, fb) in rows {
        let short: String = name.chars().take(90).collect();
        s.push_str(&format!(
            "| {} | {:.1}% | {:.1}% | {:+.1} pt | {:.1}% | {:.1}% |\n",
            short,
            100.0 * fa.self_share,
            100.0 * fb.self_share,
            100.0 * (fb.self_share - fa.self_share),
            100.0 * fa.total_share,
            100.0 * fb.total_share
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use pprof::protos::{Function, Line, Location, Sample};

    /// main -> verify (3 samples), main -> commit (1 sample).
    fn profile() -> Vec<u8> {
        profile_with(3, 1)
    }

    /// main -> verify (`v` samples), main -> commit (`c` samples). The verify samples carry
    /// the profiler's unwinder on top, as a debug build's do.
    fn profile_with(v: i64, c: i64) -> Vec<u8> {
        let strings = [
            "",
            "main",
            "verify",
            "commit",
            "backtrace::backtrace::libunwind::trace",
        ];
        let function = (1..=4)
            .map(|i| Function {
                id: i,
                name: i as i64,
                ..Default::default()
            })
            .collect();
        let location = (1..=4)
            .map(|i| Location {
                id: i,
                line: vec![Line {
                    function_id: i,
                    line: 0,
                }],
                ..Default::default()
            })
            .collect();
        let sample = vec![
            Sample {
                location_id: vec![4, 2, 1],
                value: vec![v],
                ..Default::default()
            },
            Sample {
                location_id: vec![3, 1],
                value: vec![c],
                ..Default::default()
            },
        ];
        Profile {
            function,
            location,
            sample,
            string_table: strings.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn shares_and_flame_graph_from_a_profile_raw_or_gzipped() {
        let pb = profile();
        for bytes in [pb.clone(), gzip(&pb).unwrap()] {
            let f = functions(&bytes).unwrap();
            let verify = f.iter().find(|f| f.name == "verify").unwrap();
            assert_eq!(verify.self_share, 0.75);
            let main = f.iter().find(|f| f.name == "main").unwrap();
            assert_eq!((main.self_share, main.total_share), (0.0, 1.0));
        }
        let svg = flamegraph(&pb, "test").unwrap();
        assert!(svg.contains("<svg") && svg.contains("verify") && svg.contains("commit"));
        assert!(flamegraph(&Profile::default().encode_to_vec(), "empty").is_err());
        assert_eq!(
            folded(&pb).unwrap(),
            ["main;commit 1".to_string(), "main;verify 3".to_string()]
        );
    }

    #[test]
    fn differential_flame_graph_colours_by_share_change() {
        // verify 75 % -> 25 % of the samples, over twice as many samples: after scaling,
        // verify shrank (blue) and commit grew (red).
        let before = profile_with(3, 1);
        let after = profile_with(2, 6);
        let svg = diff_flamegraph(&before, &after, "diff").unwrap();
        assert!(svg.contains("<svg") && svg.contains("red: more"));
        let title = |f: &str| {
            let i = svg.find(&format!("<title>{f} ")).unwrap();
            svg[i..i + 120].to_string()
        };
        // inferno titles differential frames with the change in percentage points.
        assert!(title("verify").contains('-'), "{}", title("verify"));
        assert!(title("commit").contains('+'), "{}", title("commit"));
        assert!(diff_flamegraph(&before, &Profile::default().encode_to_vec(), "x").is_err());
    }
}
