//! `--link`, `--latency-matrix` and `--regions`: the emulated network of a testnet (shared
//! by `testnet init` and `experiment`).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tpslab_testnet::Links;

#[derive(Args, Clone, Debug, Default)]
pub struct LinkArgs {
    /// Emulate every validator link in userspace (this kernel has no netem), e.g.
    /// `delay=50ms,jitter=5ms,bw=100mbit,loss=1%`: one-way delay, jitter (consensus frames
    /// stay in order), link rate, and loss of mempool gossip only. Client links are not shaped.
    #[arg(long)]
    pub link: Option<String>,
    /// One-way delays between named regions, from a CSV (`region,a,b` header, then a row per
    /// region, ms); needs --regions. --link then gives the rest (jitter, bw, loss). Example:
    /// docs/latency-4regions.csv (illustrative figures).
    #[arg(long)]
    pub latency_matrix: Option<PathBuf>,
    /// Each validator's region in the matrix, e.g. `node0=us-east,node1=eu-west,...`.
    #[arg(long)]
    pub regions: Option<String>,
}

impl LinkArgs {
    /// The links these flags ask for.
    pub fn resolve(&self) -> Result<Links> {
        Links::from_args(
            self.link.as_deref(),
            self.latency_matrix.as_deref(),
            self.regions.as_deref(),
        )
    }
}
