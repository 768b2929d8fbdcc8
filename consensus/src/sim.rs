//! What the seeded simulated networks share (the Raft one in `raft/sim.rs`, the BFT one in
//! `tests/bft_sim.rs`): a small deterministic generator and the seeds a run covers.

/// splitmix64: well mixed, tiny, and the same on every platform; a simulation needs nothing
/// stronger, and every decision it makes comes from here.
pub struct SimRng(pub u64);

impl SimRng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// The seeds to run: `TPSLAB_SIM_SEED=N` replays one, `TPSLAB_SIM_SEEDS=N` runs 0..N, and
/// without either 0..200 (CI).
pub fn seeds() -> Vec<u64> {
    if let Some(one) = std::env::var("TPSLAB_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![one];
    }
    let n = std::env::var("TPSLAB_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200u64);
    (0..n).collect()
}
