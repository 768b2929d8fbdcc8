//! Stable, unmangled functions wrapped around the node's synchronous hot paths, so eBPF
//! uprobe/uretprobe pairs (tpslab's funclatency probe) can time them from outside the process
//! by symbol name, whatever rustc's mangling and inlining do to the code inside.
//!
//! Each `tpslab_probe_*` symbol takes its scalar arguments in C ABI registers (the probes read
//! the commit's height and tx count there) and runs the real work through a `dyn FnMut`; the
//! cost is one indirect call. The names are listed in `tpslab-probe-common::FUNCS`.
#![warn(missing_docs)]

/// Runs `f` inside `run`, keeping its result.
#[inline(always)]
fn through<R>(f: impl FnOnce() -> R, run: impl FnOnce(&mut &mut dyn FnMut())) -> R {
    let mut f = Some(f);
    let mut out = None;
    let mut call = || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    };
    let mut dynf: &mut dyn FnMut() = &mut call;
    run(&mut dynf);
    match out {
        Some(r) => r,
        // `run` is one of the functions below, which always call the closure once.
        None => unreachable!("probe point did not run its body"),
    }
}

macro_rules! point {
    ($(#[$doc:meta])* $sym:ident, $wrapper:ident, $id:literal) => {
        #[doc(hidden)]
        #[no_mangle]
        #[inline(never)]
        #[allow(improper_ctypes_definitions)]
        pub extern "C" fn $sym(a: u64, b: u64, run: &mut &mut dyn FnMut()) {
            // A distinct constant per point: identical bodies would be folded into one
            // function by LLVM or the linker, and all four symbols would share an address.
            std::hint::black_box((a, b, $id));
            run()
        }

        $(#[$doc])*
        #[inline(always)]
        pub fn $wrapper<R>(a: u64, b: u64, f: impl FnOnce() -> R) -> R {
            through(f, |run| $sym(a, b, run))
        }
    };
}

point!(
    /// A block's execution and commit (`a` = height, `b` = txs).
    tpslab_probe_commit_block,
    commit_block,
    0u64
);
point!(
    /// One CheckTx batch (`a` = txs).
    tpslab_probe_check_txs,
    check_txs,
    1u64
);
point!(
    /// One batch signature verification (`a` = signatures).
    tpslab_probe_verify_batch,
    verify_batch,
    2u64
);
point!(
    /// One state write batch (`a` = height, `b` = accounts written).
    tpslab_probe_write_batch,
    write_batch,
    3u64
);

#[cfg(test)]
mod tests {
    #[test]
    fn points_return_the_body_result() {
        assert_eq!(super::commit_block(1, 2, || 40 + 2), 42);
        let mut n = 0;
        super::check_txs(3, 0, || n += 1);
        assert_eq!(n, 1);
    }
}
