//! Decompressed public keys, shared by every signature batch of the process.
//!
//! Decompression is a pure function of the 32 key bytes, so a cached point is exactly what
//! decompressing again would give: the cache changes the cost of a verdict, never the verdict.
//! Bytes that are no curve point are not cached (they are refused each time, at the same cost
//! as before). Bounded: the oldest keys are forgotten first, so a flood of one-off keys costs
//! only the cache's benefit.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};

/// Keys kept (~200 B each): the transfer workload's 10,000 accounts fit.
const CAP: usize = 16_384;

#[derive(Default)]
struct Cache {
    points: HashMap<[u8; 32], EdwardsPoint>,
    order: VecDeque<[u8; 32]>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Each key's point, None for bytes that are no curve point. One lock for the lookups and one
/// for the inserts; the decompressions run outside it.
pub(super) fn points<'a>(keys: impl Iterator<Item = &'a [u8; 32]>) -> Vec<Option<EdwardsPoint>> {
    let keys: Vec<&[u8; 32]> = keys.collect();
    let mut out: Vec<Option<EdwardsPoint>> = {
        let g = cache().lock().unwrap_or_else(|e| e.into_inner());
        keys.iter().map(|k| g.points.get(*k).copied()).collect()
    };
    let mut fresh = Vec::new();
    for (k, p) in keys.iter().zip(out.iter_mut()) {
        if p.is_none() {
            *p = CompressedEdwardsY(**k).decompress();
            if let Some(point) = p {
                fresh.push((**k, *point));
            }
        }
    }
    if !fresh.is_empty() {
        let mut g = cache().lock().unwrap_or_else(|e| e.into_inner());
        for (k, p) in fresh {
            if g.points.insert(k, p).is_none() {
                g.order.push_back(k);
            }
        }
        while g.order.len() > CAP {
            if let Some(old) = g.order.pop_front() {
                g.points.remove(&old);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_points_are_the_decompressed_points() {
        let mut keys: Vec<[u8; 32]> = (0..64u64)
            .map(|i| crate::hash::Hash::digest(&i.to_be_bytes()).0)
            .collect();
        keys.extend(keys.clone());
        for _ in 0..2 {
            let got = points(keys.iter());
            for (k, p) in keys.iter().zip(got) {
                assert_eq!(p, CompressedEdwardsY(*k).decompress(), "{}", hex::encode(k));
            }
        }
    }
}
