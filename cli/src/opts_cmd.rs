//! `tpslab opts` and the `--baseline / --tuned / --opt NAME` flags shared by commands that
//! choose tuning toggles.

use anyhow::Result;
use clap::Args;
use tpslab_types::tuning::CATALOGUE;
use tpslab_types::Tuning;

/// Which toggles to turn on. Without any flag the config file decides (default: all tuned).
#[derive(Args, Clone, Debug, Default)]
pub struct TuningArgs {
    /// Every toggle off (the naive paths), plus any --opt.
    #[arg(long, conflicts_with = "tuned")]
    baseline: bool,
    /// Every toggle on.
    #[arg(long)]
    tuned: bool,
    /// Turn on this optimization (repeatable, or comma-separated; see `tpslab opts`). Alone,
    /// it starts from the baseline.
    #[arg(long = "opt", value_delimiter = ',')]
    opts: Vec<String>,
}

impl TuningArgs {
    /// The toggles these flags select, or None to leave the config's.
    pub fn resolve(&self) -> Result<Option<Tuning>> {
        if self.tuned {
            return Ok(Some(Tuning::tuned()));
        }
        if self.baseline || !self.opts.is_empty() {
            return Ok(Some(Tuning::with(&self.opts)?));
        }
        Ok(None)
    }
}

/// `tpslab opts`: the catalogue.
pub fn print_opts() {
    for t in CATALOGUE {
        println!("{}", t.name);
        println!("  naive:  {}", t.naive);
        println!("  tuned:  {}", t.tuned);
        println!("  models: {}", t.models);
        println!("  moves:  {}", t.moves);
        println!();
    }
    println!("Turn them on with --opt NAME (repeatable), --baseline (all off) or --tuned (all on)");
    println!("on `tpslab node` and `tpslab testnet init`, or in config.toml:");
    println!("[tuning]");
    for t in CATALOGUE {
        println!("{} = true", t.name.replace('-', "_"));
    }
}
