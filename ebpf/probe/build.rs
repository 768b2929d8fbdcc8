//! Builds the eBPF programs (`ebpf/probes`, nightly + bpf-linker) into OUT_DIR. If that
//! toolchain is missing the crate still builds, with no programs and the reason recorded, so
//! tpslab runs without probes and says why instead of failing to compile.

use std::path::PathBuf;

fn main() {
    // Read at run time, not with env!: checkouts sharing one target dir share this compiled
    // script (cargo hashes workspace-relative paths), so a compiled-in path would point into
    // whichever checkout built it first, possibly deleted since.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let probes = PathBuf::from(manifest).join("../probes");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    // Relative to this package, so the shared target dir of a checkout elsewhere (CI's fresh
    // clone) does not reuse an outcome keyed to paths that no longer exist.
    println!("cargo:rerun-if-changed=../probes/src");
    println!("cargo:rerun-if-changed=../probes/Cargo.toml");
    println!("cargo:rerun-if-changed=../common/src");
    let elf = out.join("tpslab-probes");
    let result = (|| -> Result<(), String> {
        // aya-build runs `cargo build --package` in the current directory; the probes crate
        // is its own workspace (BPF target, nightly), so build from there.
        std::env::set_current_dir(&probes).map_err(|e| e.to_string())?;
        let root = probes.to_str().ok_or("non-UTF-8 path")?;
        aya_build::build_ebpf(
            [aya_build::Package {
                name: "tpslab-probes",
                root_dir: root,
                ..Default::default()
            }],
            aya_build::Toolchain::Nightly,
        )
        .map_err(|e| format!("{e:#}"))
    })();
    let reason = match result {
        Ok(()) if elf.exists() => String::new(),
        Ok(()) => "the eBPF build produced no tpslab-probes object".into(),
        Err(e) => {
            println!("cargo:warning=tpslab-probe: eBPF programs not built: {e}");
            // A path that never exists keeps this outcome stale, so a failure (a toolchain
            // missing, a checkout gone mid-build) is retried on the next build, never replayed.
            println!(
                "cargo:rerun-if-changed={}",
                out.join("retry-after-failure").display()
            );
            std::fs::write(&elf, b"").expect("write placeholder");
            e
        }
    };
    let reason = reason.lines().next().unwrap_or("").replace('"', "'");
    println!("cargo:rustc-env=TPSLAB_PROBES_BUILD_ERROR={reason}");
}
