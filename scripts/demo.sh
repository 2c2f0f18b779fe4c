#!/usr/bin/env bash
# The main job on the embedded default: a local control plane (etcd,
# kube-apiserver, kube-controller-manager on 127.0.0.1), a local PostgreSQL
# holding the city's sample tables (where grants are made), the datamesh
# CRDs, the operator as a background process, and the city example applied.
#
#   scripts/demo.sh        start everything (idempotent) and show the result
#   scripts/demo.sh down   stop the operator and the control plane
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"
export DATAMESH_STATE="${DATAMESH_STATE:-$repo/.local/cluster}"
OPERATOR_PID="$DATAMESH_STATE/run/datamesh-operator.pid"
OPERATOR_LOG="$DATAMESH_STATE/logs/datamesh-operator.log"

stop_operator() {
  if [[ -f "$OPERATOR_PID" ]] && kill -0 "$(cat "$OPERATOR_PID")" 2>/dev/null; then
    kill "$(cat "$OPERATOR_PID")" || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$OPERATOR_PID")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$OPERATOR_PID")" 2>/dev/null || true
  fi
  rm -f "$OPERATOR_PID"
}

if [[ "${1:-up}" == "down" ]]; then
  stop_operator
  bash "$here/postgres.sh" down || true
  bash "$here/cluster.sh" down
  exit 0
fi

echo "== building datamesh =="
cargo build --bins -q
echo "== local control plane (first run builds kube-apiserver, etcd from Go modules: several minutes) =="
bash "$here/cluster.sh" up
export KUBECONFIG="$DATAMESH_STATE/admin.kubeconfig"

echo "== PostgreSQL with the city's sample data (127.0.0.1:${DATAMESH_PG_PORT:-55432}) =="
# the example's port Secrets point at this server
eval "$(bash "$here/postgres.sh" up | grep '^export ')"
psql "$DATAMESH_PG_URL" -v ON_ERROR_STOP=1 -q -f examples/city/sql/seed.sql

echo "== CRDs =="
kubectl apply --server-side --field-manager=datamesh-demo -f charts/datamesh/crds/ >/dev/null
kubectl wait --for condition=Established --timeout=60s -f charts/datamesh/crds/ >/dev/null

echo "== operator =="
stop_operator
mkdir -p "$(dirname "$OPERATOR_PID")" "$(dirname "$OPERATOR_LOG")"
DATAMESH_HTTP_ADDR="${DATAMESH_HTTP_ADDR:-127.0.0.1:8080}" DATAMESH_AUDIT_URL="sqlite://$DATAMESH_STATE/audit.db?mode=rwc" \
  nohup "$repo/target/debug/datamesh-operator" >"$OPERATOR_LOG" 2>&1 &
echo $! >"$OPERATOR_PID"
for _ in $(seq 1 100); do
  curl -fsS "http://${DATAMESH_HTTP_ADDR:-127.0.0.1:8080}/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$OPERATOR_PID")" 2>/dev/null || { echo "operator exited; see $OPERATOR_LOG" >&2; tail -20 "$OPERATOR_LOG" >&2; exit 1; }
  sleep 0.2
done

echo "== examples/city =="
for f in $(find examples/city -maxdepth 1 -name '*.yaml' | sort); do
  kubectl apply --server-side --field-manager=datamesh-demo -f "$f" >/dev/null
done
if [[ -d examples/city/agreements ]]; then
  kubectl apply --server-side --field-manager=datamesh-demo -f examples/city/agreements/ >/dev/null
fi
kubectl wait --for condition=Ready --timeout=60s domains --all >/dev/null || true
kubectl wait --for condition=Ready --timeout=60s dataproducts --all -A >/dev/null || true
sleep 3 # let the agreements be decided and granted

kubectl get domains,dataproducts -A
if kubectl get datasharingagreements -A --no-headers 2>/dev/null | grep -q .; then kubectl get datasharingagreements -A; fi
cat <<MSG

datamesh is running: operator pid $(cat "$OPERATOR_PID") (log: $OPERATOR_LOG), metrics and the
read-only API on http://${DATAMESH_HTTP_ADDR:-127.0.0.1:8080}/ (/metrics, /api/v1/audit, /api/v1/catalog/dcat)
  export KUBECONFIG=$KUBECONFIG
Stop it with: bash scripts/demo.sh down
MSG
