#!/usr/bin/env bash
# Runs every fuzz target (cargo-fuzz, libFuzzer) for SECONDS each on a copy of the seed
# corpus in fuzz/corpus (seeded from real transactions by
# `cargo run -p machi-proptest --example fuzz_corpus -- fuzz/corpus`).
#   scripts/fuzz.sh [SECONDS]        default 30; CI runs a bounded 20
# Installs cargo-fuzz from crates.io if missing. The toolchain here is stable, so the
# sanitizer is off (-s none) and RUSTC_BOOTSTRAP lets libFuzzer's flags through.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -s none)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Inputs up to max_len bytes (libFuzzer's default is 4096): an export line or a block
# record holds a chain id and many transactions, and a chain id longer than 65,535 bytes
# (what a length prefix of two bytes holds) must be reachable.
declare -A max_len=([tx_decode]=200000 [api_json]=200000 [apply]=65536)
for target in tx_decode api_json apply; do
  cp -r "fuzz/corpus/$target" "$work/$target"
  (cd fuzz && cargo fuzz run -s none "$target" "$work/$target" -- -max_total_time="$seconds" -seed=1 \
      -max_len="${max_len[$target]}" 2>&1) \
    | grep -E '^(Done|==|SUMMARY|thread)' || true
  if [ -n "$(ls fuzz/artifacts/$target 2>/dev/null)" ]; then
    echo "fuzz target $target found a crash: fuzz/artifacts/$target" >&2
    exit 1
  fi
done
