//! `tpslab advise`: the toggle to try next, from an experiment's results.json or from a
//! running testnet watched for a window.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use tpslab_bench::advise::{self, Evidence};
use tpslab_bench::experiment::ExperimentResults;

#[derive(Args)]
pub struct AdviseArgs {
    /// An experiment's results.json.
    #[arg(required_unless_present = "testnet", conflicts_with = "testnet")]
    results: Option<PathBuf>,
    /// Or: watch this running testnet (under load) and advise on what it shows.
    #[arg(long)]
    testnet: Option<PathBuf>,
    /// The window to watch the testnet for.
    #[arg(long, default_value_t = 20, requires = "testnet")]
    secs: u64,
    /// Skip node0's CPU profile while watching (the profile rules then say so).
    #[arg(long, requires = "testnet")]
    no_profile: bool,
    /// Advise on this step of the results (default: each engine's last ladder step).
    #[arg(long, conflicts_with = "all")]
    step: Option<String>,
    /// Advise on every step of the results.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn advise(a: AdviseArgs) -> Result<()> {
    let evidence: Vec<Evidence> = match (&a.results, &a.testnet) {
        (Some(path), _) => {
            let r = ExperimentResults::load(path)?;
            advise::select(&r, a.step.as_deref(), a.all).map_err(anyhow::Error::msg)?
        }
        (None, Some(dir)) => {
            if a.step.is_some() || a.all {
                bail!("--step and --all choose steps of a results file, not of a testnet");
            }
            vec![advise::live::measure(dir, a.secs, !a.no_profile).await?]
        }
        (None, None) => bail!("give a results.json or --testnet DIR"),
    };
    let advice: Vec<_> = evidence.iter().map(advise::advise).collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&advice)?);
    } else {
        for x in &advice {
            print!("{}", advise::text(x));
        }
    }
    Ok(())
}
