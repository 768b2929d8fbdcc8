//! `tpslab profile`: CPU profiles (pprof protobuf + flame graph) from running nodes, and
//! `tpslab profile diff` between two profiles.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tpslab_bench::profile::{diff, diff_flamegraph, fetch, flamegraph, functions};
use tpslab_testnet as testnet;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProfileArgs {
    #[command(subcommand)]
    cmd: Option<ProfileCmd>,
    /// Metrics address (host:port) of a node to profile; repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    node: Vec<String>,
    /// Or: every validator of a testnet.
    #[arg(long, conflicts_with = "node")]
    testnet: Option<PathBuf>,
    /// Sampling time per profile.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Samples per second.
    #[arg(long, default_value_t = 99)]
    frequency: u32,
    /// Where `<node>.pb.gz` and `<node>.svg` go.
    #[arg(long, default_value = "profiles")]
    out: PathBuf,
}

#[derive(Subcommand)]
enum ProfileCmd {
    /// Top functions by self share in two profiles, and how they moved from A to B.
    Diff {
        /// The first profile (.pb or .pb.gz).
        a: PathBuf,
        /// The second profile (.pb or .pb.gz).
        b: PathBuf,
        /// Rows to show.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Also write a differential flame graph (A -> B; red grew, blue shrank) here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

pub async fn profile(a: ProfileArgs) -> Result<()> {
    if let Some(ProfileCmd::Diff {
        a: pa,
        b: pb,
        top,
        svg,
    }) = a.cmd
    {
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        let (ra, rb) = (read(&pa)?, read(&pb)?);
        let fa = functions(&ra).with_context(|| pa.display().to_string())?;
        let fb = functions(&rb).with_context(|| pb.display().to_string())?;
        print!("{}", diff(&fa, &fb, top));
        if let Some(out) = svg {
            let title = format!("{} -> {}", pa.display(), pb.display());
            let drawn = diff_flamegraph(&ra, &rb, &title)?;
            std::fs::write(&out, drawn)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("differential flame graph: {}", out.display());
        }
        return Ok(());
    }
    let nodes: Vec<(String, String)> = match &a.testnet {
        Some(dir) => testnet::load(dir)?
            .nodes
            .into_iter()
            .map(|n| (n.name, n.metrics_addr))
            .collect(),
        None => a
            .node
            .iter()
            .map(|addr| (addr.replace([':', '.'], "_"), addr.clone()))
            .collect(),
    };
    if nodes.is_empty() {
        bail!("give --node ADDR (the node's metrics address) or --testnet DIR");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let tasks: Vec<_> = nodes
        .into_iter()
        .map(|(name, addr)| {
            let (seconds, frequency) = (a.seconds, a.frequency);
            tokio::spawn(async move {
                // One profile, drawn here: the flame graph shows the same samples as the
                // protobuf, and a node is profiled for `seconds`, not twice that.
                let pb = fetch(&addr, seconds, frequency, false).await?;
                let svg = flamegraph(&pb, &format!("{addr}: {seconds} s at {frequency} Hz"))
                    .with_context(|| format!("{addr}: no flame graph"))?;
                Ok::<_, anyhow::Error>((name, pb, svg))
            })
        })
        .collect();
    for t in tasks {
        let (name, pb, svg) = t.await.context("profile task")??;
        let pb_path = a.out.join(format!("{name}.pb.gz"));
        std::fs::write(&pb_path, tpslab_bench::profile::gzip(&pb)?)?;
        std::fs::write(a.out.join(format!("{name}.svg")), &svg)?;
        println!(
            "{name}: {} and {name}.svg; top functions by self time:",
            pb_path.display()
        );
        for f in functions(&pb)?.iter().take(10) {
            let short: String = f.name.chars().take(100).collect();
            println!(
                "  {:5.1}% self {:5.1}% total  {short}",
                100.0 * f.self_share,
                100.0 * f.total_share
            );
        }
    }
    Ok(())
}
