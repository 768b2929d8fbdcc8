# Sourced by the scripts: a persistent cargo target dir outside the clone, so RocksDB's C++
# (10-15 minutes from clean) is built once per machine, not once per checkout.
export TPSLAB_CACHE="${TPSLAB_CACHE:-/var/cache/tpslab}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TPSLAB_CACHE/target}"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || {
  export CARGO_TARGET_DIR="$HOME/.cache/tpslab/target"; mkdir -p "$CARGO_TARGET_DIR"; }
