//! The self-contained HTML report: SVG charts drawn with plotters (TPS and P99 per step,
//! latency CDFs of baseline vs tuned, CPU per step), the table, and the run's parameters.
//! No scripts or external resources, so it opens anywhere without a network.

use super::results::ExperimentResults;
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::path::Path;

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A bar per step; `unit` labels the y axis and the legend says what a bar is.
fn bars(title: &str, unit: &str, names: &[String], values: &[f64]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let max = values.iter().cloned().fold(0.0f64, f64::max).max(1.0) * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(70)
            .y_label_area_size(70)
            .build_cartesian_2d(0usize..names.len().max(1), 0f64..max)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(names.len().max(1))
            .x_label_formatter(&|i| names.get(*i).cloned().unwrap_or_default())
            .x_desc("step")
            .y_desc(unit)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let mut r = Rectangle::new([(i, 0.0), (i + 1, *v)], BLUE.mix(0.6).filled());
                r.set_margin(0, 0, 8, 8);
                r
            }))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(format!("{title} ({unit}; median over the step's runs)"))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.6).filled()));
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                Text::new(format!("{v:.0}"), (i, *v), ("sans-serif", 13).into_font())
            }))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(svg)
}

fn cdfs(r: &ExperimentResults) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let series: Vec<(&str, &Vec<[f64; 2]>, RGBColor)> = [
            r.baseline()
                .map(|s| ("baseline", &s.report.latency_cdf, RED)),
            r.tuned().map(|s| ("tuned", &s.report.latency_cdf, BLUE)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let max = series
            .iter()
            .flat_map(|s| s.1.iter().map(|p| p[1]))
            .fold(1.0f64, f64::max);
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency CDF (intended send -> commit)", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max * 1.05, 0f64..1.0)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("latency, ms")
            .y_desc("fraction of txs")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (name, pts, color) in series {
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p[1], p[0])),
                    color.stroke_width(2),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(svg)
}

/// Renders the report to `path`.
pub fn write(r: &ExperimentResults, path: &Path) -> Result<()> {
    let names: Vec<String> = r.steps.iter().map(|s| r.label(s)).collect();
    let tps: Vec<f64> = r.steps.iter().map(|s| s.tps).collect();
    let p99: Vec<f64> = r.steps.iter().map(|s| s.p99_ms).collect();
    let cpu: Vec<f64> = r.steps.iter().map(|s| s.cpu_pct).collect();
    let mut html = header(r);
    html.push_str(&reading(r));
    html.push_str(&steps_table(r));
    html.push_str("<h2>Committed TPS per step</h2>\n");
    html.push_str(&bars("Committed TPS", "tx/s", &names, &tps)?);
    html.push_str("<h2>P99 latency per step</h2>\n");
    html.push_str(&bars("P99 latency", "ms", &names, &p99)?);
    html.push_str("<h2>Latency distribution, baseline vs tuned</h2>\n");
    html.push_str(&cdfs(r)?);
    html.push_str("<h2>Resource use: CPU of all validators per step</h2>\n");
    html.push_str(&bars(
        "CPU (% of one core, all validators)",
        "%",
        &names,
        &cpu,
    )?);
    html.push_str(&resources_table(r));
    html.push_str(&stages_html(r));
    html.push_str(&probes_html(r));
    html.push_str(&flames(r, path.parent().unwrap_or(Path::new("."))));
    html.push_str(&profiles(r));
    html.push_str("</body></html>\n");
    std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))
}

/// What the run says, first: the headline ratios and the advisor's reading of each engine's
/// last ladder step (what to try next, or what limits the tuned chain).
fn reading(r: &ExperimentResults) -> String {
    let mut html = String::from("<h2>Headline</h2>\n");
    html.push_str(&format!(
        "<pre class=\"headline\">{}</pre>\n",
        esc(r.headlines().trim())
    ));
    html.push_str("<h2>The advisor's reading</h2>\n");
    match crate::advise::select(r, None, false) {
        Ok(evidence) => {
            for e in &evidence {
                let text = crate::advise::text(&crate::advise::advise(e));
                html.push_str(&format!(
                    "<pre class=\"advice\">{}</pre>\n",
                    esc(text.trim_end())
                ));
            }
            html.push_str("<p>From <code>tpslab advise results.json</code> (its rules, thresholds and sources: docs/DESIGN.md, \"Advisor\").</p>\n");
        }
        Err(e) => html.push_str(&format!("<p>(no reading: {})</p>\n", esc(&e))),
    }
    html
}

/// The page head, the run's setup, and a failed step if any.
fn header(r: &ExperimentResults) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tpslab experiment</title>\
         <style>body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}\
         td:first-child,td:nth-child(2){text-align:left}pre{white-space:pre-wrap}</style></head><body>\n<h1>tpslab experiment</h1>\n",
    );
    let i = &r.info;
    html.push_str(&format!(
        "<p>{} validators, open loop at {} tx/s of ~{} B signed transfers from {} accounts, \
         {:.0} s window after {:.0} s warm-up, block interval {} ms. Machine: {} ({} CPUs, {} MiB), \
         {}; tpslab {}.</p>\n",
        i.validators, i.rate, i.tx_size, i.accounts, i.duration_secs, i.warmup_secs,
        i.block_interval_ms, esc(&i.cpu), i.cpus, i.mem_mib, esc(&i.kernel), esc(&i.version)
    ));
    html.push_str(&format!(
        "<p>Network between validators: {}.</p>\n",
        esc(i
            .links
            .as_deref()
            .unwrap_or("this machine's loopback, not shaped"))
    ));
    html.push_str(&format!(
        "<p>CPU placement: {}.</p>\n",
        esc(i
            .placement
            .as_deref()
            .unwrap_or("not pinned (the generator shares every core with the validators)"))
    ));
    html.push_str(&format!(
        "<p>Build: {}; binary sha256 {}. Data disk: synced 4 KiB writes P50 {} / P99 {} us.</p>\n",
        esc(&i.build),
        esc(i.binary_sha256.as_deref().unwrap_or("-")),
        i.fsync_us.map_or("-".into(), |f| format!("{:.0}", f.0)),
        i.fsync_us.map_or("-".into(), |f| format!("{:.0}", f.1)),
    ));
    if let Some(v) = i.verify_us {
        html.push_str(&format!(
            "<p>CPU: {}.</p>\n",
            esc(&crate::machine::verify_line(v))
        ));
    }
    if let Some(f) = &r.failed {
        html.push_str(&format!(
            "<p><b>The run stopped at step {} ({} attempt(s)):</b> {}. The steps below are the ones that finished.</p>\n",
            esc(&f.name),
            f.attempts,
            esc(&f.error)
        ));
    }
    html
}

/// One row per step.
fn steps_table(r: &ExperimentResults) -> String {
    let mut html = String::new();
    html.push_str("<h2>Steps</h2>\n<table><tr><th>step</th><th>toggles on</th><th>TPS</th><th>P50 ms</th><th>P99 ms</th><th>capacity tx/s</th><th>CPU %</th><th>p2p B/tx</th><th>allocs/tx</th><th>lock wait us/tx</th><th>x baseline</th><th>vs compared</th><th>sent</th><th>committed</th><th>rejected</th></tr>\n");
    for (i, s) in r.steps.iter().enumerate() {
        let spread =
            |f: &dyn Fn(&super::RunFigures) -> f64| s.spread(f).map_or("-".into(), |x| x.show(0));
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&r.label(s)),
            esc(&s.enabled.join(", ")),
            spread(&|f| f.tps),
            esc(s.bound()),
            spread(&|f| f.p50_ms),
            esc(s.bound()),
            spread(&|f| f.p99_ms),
            esc(&s.capacity.as_ref().map_or("-".into(), |c| c.show())),
            s.cpu_pct,
            s.p2p_bytes_per_tx.map_or("-".into(), |b| format!("{b:.0}")),
            s.allocs_per_tx.map_or("-".into(), |a| format!("{a:.0}")),
            s.lock_wait_us_per_tx.map_or("-".into(), |w| format!("{w:.2}")),
            super::table::show_x(s.x_baseline),
            r.noise(i).map_or("-".into(), |n| n.show()),
            s.report.sent,
            s.report.committed,
            s.report.rejected.values().sum::<u64>()
        ));
    }
    html.push_str("</table>\n");
    for s in &r.steps {
        if let Some(w) = s.capacity.as_ref().and_then(|c| c.floor_warning()) {
            html.push_str(&format!(
                "<p class=\"warn\"><b>{} capacity:</b> {}</p>\n",
                esc(&r.label(s)),
                esc(&w)
            ));
        }
    }
    html
}

/// One row per step and validator.
fn resources_table(r: &ExperimentResults) -> String {
    let mut html = String::new();
    html.push_str("<h2>Per-validator resources</h2>\n<table><tr><th>step</th><th>node</th><th>CPU %</th><th>RSS MiB</th><th>blocks</th><th>max round</th><th>mempool peak</th><th>tasks start -> end (peak)</th></tr>\n");
    for s in &r.steps {
        for n in &s.report.resources {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&r.label(s)),
                esc(&n.name),
                n.cpu_pct.unwrap_or(0.0),
                n.rss_peak_mib.unwrap_or(0.0),
                n.blocks.unwrap_or(0),
                n.max_round.unwrap_or(0),
                n.mempool_peak.unwrap_or(0),
                esc(&n.tasks.as_ref().map_or("-".into(), crate::report::task_cell))
            ));
        }
    }
    html.push_str("</table>\n");
    html
}

/// Each step's top functions, and what moved most against the baseline.
fn profiles(r: &ExperimentResults) -> String {
    let mut html = String::new();
    html.push_str("<h2>CPU profile per step (node0, 99 Hz): what moved</h2>\n<p>Each step's top functions by self time, and the functions whose share of CPU samples moved most against the baseline.</p>\n");
    for s in &r.steps {
        // Against the baseline of the same engine.
        let base = r
            .baseline_of(&s.engine)
            .map(|b| b.profile_top.clone())
            .unwrap_or_default();
        html.push_str(&format!("<h3>{}</h3>\n", esc(&r.label(s))));
        if s.profile_top.is_empty() {
            html.push_str("<p>(no profile)</p>\n");
            continue;
        }
        html.push_str("<table><tr><th>top by self time</th><th>self %</th><th>total %</th></tr>\n");
        for f in s.profile_top.iter().take(10) {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td></tr>\n",
                esc(&f.name.chars().take(100).collect::<String>()),
                100.0 * f.self_share,
                100.0 * f.total_share
            ));
        }
        html.push_str("</table>\n");
        if s.name != "baseline" && !base.is_empty() {
            html.push_str("<table><tr><th>moved most vs baseline</th><th>baseline self %</th><th>this step self %</th><th>change</th></tr>\n");
            for (name, a, b) in crate::profile::moved(&base, &s.profile_top, 10) {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:+.1} pt</td></tr>\n",
                    esc(&name.chars().take(100).collect::<String>()),
                    100.0 * a.self_share,
                    100.0 * b.self_share,
                    100.0 * (b.self_share - a.self_share)
                ));
            }
            html.push_str("</table>\n");
        }
    }
    html
}

/// Each step's node0 flame graph, inlined as an image (the SVG's own script stays inert, the
/// report needs nothing from the network).
fn flames(r: &ExperimentResults, out: &Path) -> String {
    use base64::Engine as _;
    let mut h = String::from("<h2>Flame graph per step (node0, 99 Hz CPU profile)</h2>\n");
    let mut any = false;
    let img = |alt: &str, svg: &[u8]| {
        format!(
            "<img alt=\"{}\" style=\"width:100%\" src=\"data:image/svg+xml;base64,{}\">",
            esc(alt),
            base64::engine::general_purpose::STANDARD.encode(svg)
        )
    };
    for s in &r.steps {
        let Some(svg) = s
            .flame_svg
            .as_ref()
            .and_then(|f| std::fs::read(out.join(f)).ok())
        else {
            continue;
        };
        any = true;
        h.push_str(&format!(
            "<details><summary>{}</summary>{}",
            esc(&r.label(s)),
            img(&format!("flame graph of {}", r.label(s)), &svg)
        ));
        if let Some((f, vs)) = &s.flame_diff_svg {
            if let Ok(diff) = std::fs::read(out.join(f)) {
                h.push_str(&format!(
                    "<p>Differential, {} -> {} (red: larger share of samples, blue: smaller):</p>{}",
                    esc(vs),
                    esc(&r.label(s)),
                    img(&format!("differential flame graph {vs} to {}", r.label(s)), &diff)
                ));
            }
        }
        h.push_str("</details>\n");
    }
    if !any {
        h.push_str("<p>No CPU profiles in this run (--no-profile).</p>\n");
    }
    h
}

/// The report's eBPF section: a table per step, or why the probes did not run.
fn probes_html(r: &ExperimentResults) -> String {
    let mut h =
        String::from("<h2>Kernel-side evidence per step (eBPF probes on all validators)</h2>\n");
    let rows = super::probes::rows(r);
    if rows.is_empty() {
        let why = r
            .info
            .probes_note
            .as_deref()
            .unwrap_or("not requested (run with --probes)");
        h.push_str(&format!("<p>No probe figures: {}</p>\n", esc(why)));
        return h;
    }
    h.push_str("<p>Run-queue latency (wakeup to running, log2 bucket upper bounds), off-CPU share of thread time, syscalls and futex time per committed tx (all validators together), and uprobe latency of block commit and CheckTx batches. Probes cover warm-up, window and drain. They cost most where syscalls and context switches are many (the naive steps), so TPS and latency of a run with probes are not headline figures: compare those from a run without --probes.</p>\n<table><tr>");
    for c in super::probes::HEADINGS {
        h.push_str(&format!("<th>{c}</th>"));
    }
    h.push_str("</tr>\n");
    for row in rows {
        h.push_str("<tr>");
        for c in row {
            h.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    h
}

/// Where txs waited in each step: one stage-latency table per step (all validators merged).
fn stages_html(r: &ExperimentResults) -> String {
    let mut h = String::from(
        "<h2>Where txs wait: stage latencies per step</h2>\n<p>HDR histograms kept by every validator \
         over the measured window, merged across validators. <code>gossip</code>, \
         <code>consensus</code> and <code>notify</code> subtract wall-clock times of different \
         processes (exact on one machine). <code>notify</code> counts one delivery per tx and \
         subscribed client.</p>\n",
    );
    for s in &r.steps {
        h.push_str(&format!("<h3>{}</h3>\n", esc(&r.label(s))));
        if s.report.stages.is_empty() {
            h.push_str(
                "<p>(no stage figures: the validators' /debug/stages was not reachable)</p>\n",
            );
            continue;
        }
        h.push_str("<table><tr><th>stage</th><th>from -> to</th><th>txs</th><th>P50 ms</th><th>P95 ms</th><th>P99 ms</th><th>mean ms</th></tr>\n");
        for st in &s.report.stages {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>\n",
                esc(&st.stage),
                esc(&st.what),
                st.count,
                st.p50_ms,
                st.p95_ms,
                st.p99_ms,
                st.mean_ms
            ));
        }
        h.push_str("</table>\n");
    }
    h
}
