#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, one after another, and prints
# one summary line per target. Not part of CI.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 120 s for each of the four targets
#
# Targets: decide_manifests, policy_text, policy_test_file, audit_query (docs/fuzzing.md).
# Seeds (committed) are in fuzz/seeds/<target>/; what the fuzzer finds grows
# fuzz/corpus/<target>/ (not committed). A crash leaves its input in
# fuzz/artifacts/<target>/: minimise it (`cargo +nightly fuzz tmin <target> <file>`),
# turn it into a regression test in the crate the bug is in, then fix it.
# Exits non-zero if any target crashed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../fuzz"
secs="${1:-120}"; shift || true
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }
targets=("$@"); [[ ${#targets[@]} -gt 0 ]] || targets=(decide_manifests policy_text policy_test_file audit_query)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly flags; use a nightly toolchain when installed, else let stable accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then tc=(+nightly); else tc=(); export RUSTC_BOOTSTRAP=1; fi

# Build first, so the time given is all spent fuzzing.
for t in "${targets[@]}"; do cargo "${tc[@]}" fuzz build "$t"; done

mkdir -p logs
summary=(); failed=0
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${secs}s =="
  mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
  log="logs/$t.log"
  # New inputs go to corpus/<t> (the first directory); seeds/<t> is only read.
  if cargo "${tc[@]}" fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    result="clean"
  else
    artifact="$(grep -o 'artifacts/[^ ]*' "$log" | tail -1 || true)"
    if [[ -n "$artifact" ]]; then result="CRASH: fuzz/$artifact (see fuzz/$log)"; else result="FAILED to run (see fuzz/$log)"; fi
    failed=1
  fi
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)"
  cov="$(grep -oE '#[0-9]+[[:space:]]+DONE[[:space:]]+cov: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)"
  line="$(printf '%-17s %5ss  %10s runs  cov %-6s %s' "$t" "$secs" "${runs:-?}" "${cov:-?}" "$result")"
  echo "$line"; summary+=("$line")
done
echo "== fuzz summary ($(date -u +%Y-%m-%dT%H:%M:%SZ)) =="
printf '%s\n' "${summary[@]}"
exit "$failed"
