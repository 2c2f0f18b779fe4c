#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time (default 60 s each) on the
# project's own code. Not part of CI: `bash scripts/fuzz.sh [SECONDS] [TARGET...]`.
# A crash leaves its input in fuzz/artifacts/<target>/; turn it into a
# regression test before fixing it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../fuzz"
secs="${1:-60}"; shift || true
targets=("$@"); [[ ${#targets[@]} -gt 0 ]] || targets=(decide_manifests policy_text policy_test_file)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly flags; use a nightly toolchain when installed, else let stable accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then tc=(+nightly); else tc=(); export RUSTC_BOOTSTRAP=1; fi
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${secs}s =="
  mkdir -p "corpus/$t"
  cargo "${tc[@]}" fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096
done
