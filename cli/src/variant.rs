//! Builds of tpslab with another global allocator, for `experiment --allocators`. Each variant
//! gets its own cargo target dir under the cache (a feature change would otherwise rebuild
//! shared dependencies, RocksDB included, every time the two builds alternate).

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo features that make the `name` allocator build.
fn features(name: &str) -> Result<&'static [&'static str]> {
    match name {
        "system" => Ok(&[]),
        "jemalloc" => Ok(&["--features", "tpslab-cli/jemalloc"]),
        other => bail!("unknown allocator `{other}`: expected system or jemalloc"),
    }
}

/// The active toolchain's own cargo and rustc, not rustup's proxies. A proxy picks its toolchain
/// from RUSTUP_TOOLCHAIN, else from the directory it runs in, and cargo runs rustc inside each
/// dependency's source: several ship a rust-toolchain.toml (proc-macro2, rocksdb, ...), so a
/// nested build started without RUSTUP_TOOLCHAIN (as a test's can be) failed with "toolchain
/// 1.88.0 is not installed".
fn toolchain(source: &Path) -> Result<(PathBuf, PathBuf)> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(source)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} to find the toolchain",
                rustc.to_string_lossy()
            )
        })?;
    ensure!(
        out.status.success(),
        "`rustc --print sysroot` failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin");
    ensure!(
        bin.join("cargo").exists() && bin.join("rustc").exists(),
        "no cargo and rustc in {}",
        bin.display()
    );
    Ok((bin.join("cargo"), bin.join("rustc")))
}

/// Builds (or finds up to date) the `name` variant from the source tree at `source`; returns
/// its binary.
pub fn build(name: &str, source: &Path) -> Result<PathBuf> {
    let features = features(name)?;
    let manifest = source.join("Cargo.toml");
    if !manifest.exists() {
        bail!(
            "cannot build the {name} variant: no tpslab source tree at {} (pass --source DIR)",
            source.display()
        );
    }
    let cache = std::env::var_os("TPSLAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tpslab"));
    let target = cache.join(format!("target-{name}"));
    eprintln!(
        "building the {name} variant into {} (the first build compiles RocksDB: 10-15 min)",
        target.display()
    );
    let (cargo, rustc) = toolchain(source)?;
    let status = Command::new(cargo)
        .env("RUSTC", rustc)
        .arg("build")
        .arg("--release")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", "tpslab-cli"])
        .args(features)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("cannot run cargo to build the allocator variant")?;
    if !status.success() {
        bail!("building the {name} variant failed ({status})");
    }
    Ok(target.join("release").join("tpslab"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_allocators_and_missing_sources_are_named() {
        assert!(features("tcmalloc")
            .unwrap_err()
            .to_string()
            .contains("tcmalloc"));
        let e = build("jemalloc", Path::new("/nonexistent")).unwrap_err();
        assert!(e.to_string().contains("--source"), "{e}");
    }
}
