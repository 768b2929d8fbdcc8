//! The other allocator's binary, for `experiment --allocators`. The allocator is fixed per
//! binary (`tpslab` on the system allocator, `tpslab-jemalloc` on jemalloc), and cargo builds
//! both side by side from the same dependencies, so a variant is a file next to this one.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The binary whose Rust heap runs on the `name` allocator.
fn binary_name(name: &str) -> Result<&'static str> {
    match name {
        "system" => Ok("tpslab"),
        "jemalloc" => Ok("tpslab-jemalloc"),
        other => bail!("unknown allocator `{other}`: expected system or jemalloc"),
    }
}

/// The `name` allocator's binary in `dir` (the directory of the running binary).
pub fn find_in(name: &str, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(binary_name(name)?);
    if !path.is_file() {
        bail!(
            "no {} for the {name} allocator: `cargo build --release -p tpslab-cli` builds it \
             next to tpslab",
            path.display()
        );
    }
    Ok(path)
}

/// The `name` allocator's binary next to the running one.
pub fn find(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running tpslab binary")?;
    let dir = exe.parent().context("the tpslab binary has no directory")?;
    find_in(name, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_allocators_and_missing_binaries_are_named() {
        let e = find("tcmalloc").unwrap_err().to_string();
        assert!(e.contains("tcmalloc"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = find_in("jemalloc", dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("tpslab-jemalloc") && e.contains("cargo build"),
            "{e}"
        );
        std::fs::write(dir.path().join("tpslab-jemalloc"), b"").unwrap();
        assert!(find_in("jemalloc", dir.path()).is_ok());
    }
}
