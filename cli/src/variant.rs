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

/// Whether `dir` is a tpslab source tree (the workspace root).
fn is_source_tree(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file() && dir.join("cli/Cargo.toml").is_file()
}

/// The source tree to build variants from when none is given: the one this binary was built
/// from if it is still there, else the one containing the current directory. A binary reused
/// from a shared target dir may have been built in another checkout that no longer exists.
pub fn default_source() -> Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if is_source_tree(&built_from) {
        return Ok(built_from);
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    cwd.ancestors()
        .find(|d| is_source_tree(d))
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no tpslab source tree at {} or around {} to build the allocator variant from \
                 (pass --source DIR)",
                built_from.display(),
                cwd.display()
            )
        })
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
    if !is_source_tree(source) {
        bail!(
            "cannot build the {name} variant: no tpslab source tree at {} (pass --source DIR)",
            source.display()
        );
    }
    let source = &source.canonicalize().context("resolving --source")?;
    let manifest = source.join("Cargo.toml");
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
        assert!(is_source_tree(&default_source().unwrap()));
        assert!(!is_source_tree(Path::new("/")));
    }
}
