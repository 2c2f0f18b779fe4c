#!/usr/bin/env bash
# The decision-core benchmarks in one go: the criterion bench (Cedar indexed
# and stock, regorus, re-deciding 100,000 agreements) and `opa bench` on the
# same default rules (policies/rego/datamesh.rego) and the same input
# documents, which the criterion bench writes. Prints both and records them,
# with the machine, load and versions, under $OUT (default
# $CARGO_TARGET_DIR/bench-policies).
#
#   bash scripts/bench-policies.sh            # everything
#   BENCH_ARGS='--quick' bash scripts/bench-policies.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
out="${OUT:-$target/bench-policies}"
mkdir -p "$out"
results="$out/results.txt"

opa_bin="$(bash "$here/toolchain.sh" opa)/opa"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$here/versions.env"

{
  echo "# datamesh policy benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  echo "load before: $(uptime)"
  echo "rustc: $(rustc --version)"
  echo "cedar-policy: $(grep -A1 '^name = "cedar-policy"$' "$root/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')"
  echo "regorus: $(grep -A1 '^name = "regorus"$' "$root/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')"
  echo "opa: $OPA_VERSION ($("$opa_bin" version | head -1))"
} | tee "$results"

echo "== criterion: cargo bench -p datamesh-policies --bench decide" | tee -a "$results"
(cd "$root" && DATAMESH_BENCH_OUT="$out" cargo bench -p datamesh-policies --bench decide -- ${BENCH_ARGS:-}) 2>&1 |
  tee "$out/criterion.txt" | grep -v '^\(Benchmarking\|Gnuplot\)' || true
cat "$out/cedar-regorus.txt" >> "$results"
grep -E '^(decide|redecide)/|time:' "$out/criterion.txt" >> "$results" || true

echo "== opa bench (one core: GOMAXPROCS=1), same rules, same input documents" | tee -a "$results"
rego="$root/policies/rego/datamesh.rego"
for input in "$out"/opa-inputs/input-*.json; do
  n="${input##*/input-}"; n="${n%.json}"
  # The same answer as Cedar first, or the timing compares different work.
  got="$("$opa_bin" eval --format raw -d "$rego" -i "$input" 'data.datamesh.decision')"
  want="$(cat "$out/opa-inputs/expected-$n.json")"
  if [[ "$(echo "$got" | tr -d ' \n')" != "$(echo "$want" | tr -d ' \n')" ]]; then
    echo "opa decides $got for input-$n, Cedar $want" >&2
    exit 1
  fi
  echo "input-$n: $got" | tee -a "$results"
  GOMAXPROCS=1 "$opa_bin" bench --format json --benchmem=false --count 5 -d "$rego" -i "$input" 'data.datamesh.decision' \
    > "$out/opa-bench-$n.json"
  # Per run: decisions/s (N/T), and the query-evaluation p50/p99; the median run of 5.
  python3 - "$out/opa-bench-$n.json" "$n" <<'PY' | tee -a "$results"
import json, sys
text = open(sys.argv[1]).read()
runs, dec, pos = [], json.JSONDecoder(), 0
while pos < len(text):
    if text[pos].isspace():
        pos += 1
        continue
    obj, pos = dec.raw_decode(text, pos)
    runs.append(obj)
key = "histogram_timer_rego_query_eval_ns_"
med = lambda xs: sorted(xs)[len(xs) // 2]
per_sec = med([r["N"] / r["T"] * 1e9 for r in runs])
p50 = med([r["Extra"][key + "median"] for r in runs]) / 1e3
p99 = med([r["Extra"][key + "99%"] for r in runs]) / 1e3
print(f"opa input-{sys.argv[2]}: p50 {p50:.1f} us, p99 {p99:.1f} us, {per_sec:.0f} decisions/s (1 core, {len(runs)} runs)")
PY
done
echo "load after: $(uptime)" | tee -a "$results"
echo "recorded in $results"
