#!/usr/bin/env bash
# The test command: lints, unit tests, and the end-to-end tests against a real
# kube-apiserver + etcd started here on 127.0.0.1 and stopped
# again on exit. Binaries built from Go modules are cached outside the repo,
# so only the first run on a machine pays for building them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"
export DATAMESH_STATE="${DATAMESH_STATE:-$repo/.local/test-cluster}"

step() { printf '\n== %s ==\n' "$*"; }

PG_STATE="$repo/.local/test-postgres"
RESULTS="$(mktemp)"

# Adds up every cargo test summary line, so the run ends on one total.
summary() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { printf "\ntests: %d passed, %d failed\n", p, f }' "$RESULTS"
}

cleanup() {
  status=$?
  step "stopping the test control plane"
  bash "$here/cluster.sh" down --purge || true
  DATAMESH_STATE="$PG_STATE" bash "$here/postgres.sh" down --purge || true
  summary
  rm -f "$RESULTS"
  exit "$status"
}
trap cleanup EXIT

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

step "building"
cargo build --workspace --bins -q

step "unit and policy tests"
cargo test --workspace --exclude datamesh-e2e -q 2>&1 | tee -a "$RESULTS"

step "local control plane"
bash "$here/toolchain.sh" all >/dev/null
bash "$here/cluster.sh" down --purge >/dev/null 2>&1 || true
bash "$here/cluster.sh" up
export KUBECONFIG="$DATAMESH_STATE/admin.kubeconfig"

step "PostgreSQL for the enforcement tests"
DATAMESH_STATE="$PG_STATE" bash "$here/postgres.sh" down --purge >/dev/null 2>&1 || true
eval "$(DATAMESH_STATE="$PG_STATE" bash "$here/postgres.sh" up)"
export DATAMESH_PG_URL

step "end-to-end tests (real kube-apiserver, etcd and PostgreSQL)"
# One at a time: each test runs its own operator process against the shared API server.
cargo test -p datamesh-e2e -q --no-fail-fast -- --test-threads=1 2>&1 | tee -a "$RESULTS"
