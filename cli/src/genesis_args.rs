//! The genesis flags `init` and `testnet init` share: test accounts and the app.

use clap::Args;
use tpslab_types::AppKind;

#[derive(Args)]
pub struct GenesisArgs {
    /// Number of funded test accounts in the genesis.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Seed the test account keys are derived from (a load generator uses the same seed).
    #[arg(long, default_value = "tpslab")]
    pub seed: String,
    /// Initial balance of each test account.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub balance: u64,
    /// The app the chain runs: transfer or kvstore.
    #[arg(long, default_value = "transfer")]
    pub app: AppKind,
}
