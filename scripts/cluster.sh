#!/usr/bin/env bash
# Local Kubernetes control plane for development and tests (no kubelet, no
# Docker). Owns, under $DATAMESH_STATE (default <repo>/.local/cluster): the PKI,
# the kubeconfigs, the etcd data and the etcd, kube-apiserver and
# kube-controller-manager processes it starts on 127.0.0.1, with their pid files
# and logs. Binaries come from scripts/toolchain.sh (built once, cached).
#
#   cluster.sh up                  start (idempotent); prints `export KUBECONFIG=...`
#   cluster.sh down [--purge]      stop everything; --purge also deletes the cluster state
#   cluster.sh status              what runs where; exit 0 only if all is up and ready
#   cluster.sh env                 prints `export KUBECONFIG=...`
#   cluster.sh user NAME [GROUP...]  client cert for NAME/GROUPs; prints its kubeconfig path
#   cluster.sh restart-apiserver|restart-etcd [--kill]
#                                  stop (SIGTERM; --kill: SIGKILL, like a crash) and
#                                  start that one process again, wait until ready
#
# Environment: DATAMESH_STATE, DATAMESH_CACHE (toolchain cache),
# DATAMESH_ETCD_PORT, DATAMESH_ETCD_PEER_PORT, DATAMESH_APISERVER_PORT (default:
# free ports chosen on first `up`, then kept in $STATE/ports.env),
# DATAMESH_READY_TIMEOUT (s, default 120), DATAMESH_STOP_TIMEOUT (s, default 15),
# DATAMESH_KUBE_BIN / DATAMESH_ETCD_BIN (use these binary dirs, skip toolchain.sh),
# DATAMESH_APISERVER_PROFILING=true (serve /debug/pprof on the API server, for
# profiling it under a benchmark; off by default).
set -euo pipefail
shopt -s inherit_errexit

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
STATE="${DATAMESH_STATE:-$repo/.local/cluster}"
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
PKI="$STATE/pki"
LOGS="$STATE/logs"
RUN="$STATE/run"
USERS="$STATE/users"
ADMIN_KUBECONFIG="$STATE/admin.kubeconfig"
CM_KUBECONFIG="$STATE/controller-manager.kubeconfig"
PORTS_FILE="$STATE/ports.env"
READY_TIMEOUT="${DATAMESH_READY_TIMEOUT:-120}"
STOP_TIMEOUT="${DATAMESH_STOP_TIMEOUT:-15}"
CLUSTER_NAME=datamesh-local
SERVICE_CIDR=10.0.0.0/24
SERVICE_IP=10.0.0.1
COMPONENTS=(etcd kube-apiserver kube-controller-manager)

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# --- locking: one mutating command at a time per state dir -----------------
# fd 9 holds the lock; it is closed for every process we start.
take_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  # long: a first `up` holds it while toolchain.sh builds Kubernetes
  flock -w 3600 9 || die "waited an hour for another cluster.sh command holding $STATE/.lock; find it with: fuser -v $STATE/.lock"
}

# --- binaries ----------------------------------------------------------------
resolve_binaries() {
  if [[ -n "${DATAMESH_KUBE_BIN:-}" ]]; then KUBE_BIN="$DATAMESH_KUBE_BIN"
  else KUBE_BIN="$(bash "$here/toolchain.sh" kubernetes)" || die "building Kubernetes failed (see output above); fix it and rerun: bash scripts/toolchain.sh kubernetes"
  fi
  if [[ -n "${DATAMESH_ETCD_BIN:-}" ]]; then ETCD_BIN="$DATAMESH_ETCD_BIN"
  else ETCD_BIN="$(bash "$here/toolchain.sh" etcd)" || die "building etcd failed (see output above); fix it and rerun: bash scripts/toolchain.sh etcd"
  fi
  local b
  for b in "$KUBE_BIN/kube-apiserver" "$KUBE_BIN/kube-controller-manager" "$ETCD_BIN/etcd"; do
    [[ -x "$b" ]] || die "missing binary $b; run: bash scripts/toolchain.sh all"
  done
}

# --- ports ---------------------------------------------------------------------
port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() { # a free port in 20000-32767 (below Linux's ephemeral range), not in "$@"
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12768))
    [[ " $* " == *" $p "* ]] && continue
    port_in_use "$p" || { echo "$p"; return; }
  done
  die "could not find a free port on 127.0.0.1; set DATAMESH_ETCD_PORT, DATAMESH_ETCD_PEER_PORT and DATAMESH_APISERVER_PORT"
}

load_ports() { # saved ports, if any
  ETCD_PORT="" ETCD_PEER_PORT="" APISERVER_PORT=""
  # shellcheck disable=SC1090
  if [[ -f "$PORTS_FILE" ]]; then source "$PORTS_FILE"; fi
}

choose_ports() { # env overrides saved; a running cluster keeps its ports
  load_ports
  if any_running; then
    [[ -n "$ETCD_PORT" && -n "$APISERVER_PORT" ]] || die "processes are running but $PORTS_FILE is missing; run: bash scripts/cluster.sh down"
    local v
    for v in ETCD_PORT ETCD_PEER_PORT APISERVER_PORT; do
      local want="DATAMESH_$v"
      if [[ -n "${!want:-}" && "${!want}" != "${!v}" ]]; then
        log "warning: $want=${!want} ignored while the cluster runs on ${!v}; run 'down' first to change it"
      fi
    done
    return
  fi
  ETCD_PORT="${DATAMESH_ETCD_PORT:-${ETCD_PORT:-$(pick_port)}}"
  ETCD_PEER_PORT="${DATAMESH_ETCD_PEER_PORT:-${ETCD_PEER_PORT:-$(pick_port "$ETCD_PORT")}}"
  APISERVER_PORT="${DATAMESH_APISERVER_PORT:-${APISERVER_PORT:-$(pick_port "$ETCD_PORT" "$ETCD_PEER_PORT")}}"
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\n' "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" >"$PORTS_FILE"
}

# --- PKI (openssl, ECDSA P-256, PKCS#8 keys) ----------------------------------
gen_key() { (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) || die "openssl could not create $1"; }

gen_ca() { # name CN
  local name=$1 cn=$2 cnf
  [[ -f "$PKI/$name.crt" && -f "$PKI/$name.key" ]] && return
  gen_key "$PKI/$name.key"
  cnf="$(mktemp)"
  printf '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n' >"$cnf"
  openssl req -x509 -new -key "$PKI/$name.key" -subj "/CN=$cn" -days 3650 -sha256 \
    -config "$cnf" -extensions v3 -out "$PKI/$name.crt" 2>/dev/null || { rm -f "$cnf"; die "openssl could not create CA $name"; }
  rm -f "$cnf"
}

# issue_cert CA OUT_BASE SUBJECT EKU [SAN]: key + cert signed by CA (pki/CA.{crt,key})
issue_cert() {
  local ca=$1 out=$2 subj=$3 eku=$4 san=${5:-} tmp
  tmp="$(mktemp -d)"
  gen_key "$tmp/key"
  printf '[req]\ndistinguished_name=dn\n[dn]\n' >"$tmp/req.cnf"
  {
    printf '[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n'
    printf 'extendedKeyUsage=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$eku"
    if [[ -n "$san" ]]; then printf 'subjectAltName=%s\n' "$san"; fi
  } >"$tmp/ext.cnf"
  if ! { openssl req -new -key "$tmp/key" -subj "$subj" -config "$tmp/req.cnf" -out "$tmp/csr" &&
    openssl x509 -req -in "$tmp/csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
      -extfile "$tmp/ext.cnf" -extensions v3 -out "$tmp/crt"; } 2>"$tmp/err"; then
    cat "$tmp/err" >&2; rm -rf "$tmp"; die "openssl could not issue a certificate for $subj"
  fi
  mv "$tmp/key" "$out.key"; mv "$tmp/crt" "$out.crt"
  rm -rf "$tmp"
}

ensure_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  gen_ca ca datamesh-local-ca
  gen_ca front-proxy-ca datamesh-local-front-proxy-ca
  [[ -f "$PKI/apiserver.crt" ]] || issue_cert ca "$PKI/apiserver" /CN=kube-apiserver serverAuth \
    "IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  [[ -f "$PKI/front-proxy-client.crt" ]] || issue_cert front-proxy-ca "$PKI/front-proxy-client" /CN=front-proxy-client clientAuth
  [[ -f "$PKI/admin.crt" ]] || issue_cert ca "$PKI/admin" "/CN=admin/O=system:masters" clientAuth
  # The controller manager runs every controller under its own identity
  # (--use-service-account-credentials=false); the bootstrap role
  # system:kube-controller-manager alone cannot delete arbitrary objects, which the
  # garbage collector and namespace controller must, hence system:masters too.
  [[ -f "$PKI/controller-manager.crt" ]] || issue_cert ca "$PKI/controller-manager" \
    "/CN=system:kube-controller-manager/O=system:masters" clientAuth
  if [[ ! -f "$PKI/sa.key" ]]; then
    (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null) || die "openssl could not create the service-account key"
    openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}

b64() { base64 -w0 <"$1"; }

write_kubeconfig() { # path user cert-base
  local path=$1 user=$2 base=$3 tmp
  tmp="$(mktemp "$path.XXXXXX")"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: "$user"
  user:
    client-certificate-data: $(b64 "$base.crt")
    client-key-data: $(b64 "$base.key")
contexts:
- name: "$user@$CLUSTER_NAME"
  context:
    cluster: $CLUSTER_NAME
    user: "$user"
current-context: "$user@$CLUSTER_NAME"
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$path"
}

# --- processes -----------------------------------------------------------------
pidfile() { echo "$RUN/$1.pid"; }

alive() { # pid is a live (non-zombie) process
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# is_ours PID NAME: the process runs binary NAME (guards against pid reuse)
is_ours() { local exe; exe="$(readlink "/proc/$1/exe" 2>/dev/null)" && [[ "${exe##*/}" == "$2" ]]; }

running_pid() { # prints the pid of component $1 if it runs
  local f pid
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && is_ours "$pid" "$1" || return 1
  echo "$pid"
}

any_running() { local c; for c in "${COMPONENTS[@]}"; do running_pid "$c" >/dev/null && return 0; done; return 1; }

start_proc() { # name binary args...
  local name=$1 f pid i
  shift
  f="$(pidfile "$name")"
  mkdir -p "$RUN" "$LOGS"
  rm -f "$f"
  echo "=== $(date -u +%FT%TZ) cluster.sh starting $name" >>"$LOGS/$name.log"
  # setsid: own session, so a terminal's Ctrl-C or a test harness' process
  # group kill does not reach it; the inner shell writes its own pid, then execs.
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$f" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
  for ((i = 0; i < 100; i++)); do
    if [[ -s "$f" ]]; then
      pid="$(<"$f")"
      is_ours "$pid" "$name" && { STARTED+=("$name"); return; }
      alive "$pid" || break
    fi
    sleep 0.05
  done
  fail_component "$name" "did not start"
}

stop_pid() { # pid name [--kill: SIGKILL at once, like a crash]
  local pid=$1 name=$2 signal=TERM deadline t0=$SECONDS
  [[ "${3:-}" == --kill ]] && signal=KILL
  kill -"$signal" "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if alive "$pid"; then
    log "$name (pid $pid) still running after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    alive "$pid" && die "could not kill $name (pid $pid); check it with: ps -p $pid"
  fi
  log "stopped $name in $((SECONDS - t0))s"
}

stop_proc() { # name [--kill]
  local pid
  if pid="$(running_pid "$1")"; then
    log "stopping $1 (pid $pid)${2:+ with SIGKILL}"
    stop_pid "$pid" "$1" "${2:-}"
  fi
  rm -f "$(pidfile "$1")"
}

stop_strays() { # processes of our binaries whose command line names this state dir, with no pid file
  local p exe name cmdline
  for p in /proc/[0-9]*; do
    exe="$(readlink "$p/exe" 2>/dev/null)" || continue
    name="${exe##*/}"
    [[ " ${COMPONENTS[*]} " == *" $name "* ]] || continue
    cmdline="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" || continue
    if [[ "$cmdline" == *"$STATE/"* ]]; then
      log "stopping stray $name (pid ${p#/proc/}) of $STATE"
      stop_pid "${p#/proc/}" "$name"
    fi
  done
}

# A command that fails part-way stops what it started itself (EXIT trap), so a
# failed `up` leaves no processes behind; its logs stay.
STARTED=()
DONE=false
cleanup_on_failure() {
  local c
  $DONE && return
  ((${#STARTED[@]})) || return 0
  log "stopping what this command started: ${STARTED[*]}"
  for ((c = ${#STARTED[@]} - 1; c >= 0; c--)); do stop_proc "${STARTED[c]}" || true; done
}
trap cleanup_on_failure EXIT

# fail_component NAME WHY: print the tail of its log and exit
fail_component() {
  local name=$1 why=$2
  {
    echo "cluster: error: $name $why. Last lines of $LOGS/$name.log:"
    tail -n 30 "$LOGS/$name.log" 2>/dev/null | sed 's/^/    /'
  } >&2
  die "$name $why. Fix the cause shown above (full log: $LOGS/$name.log), then rerun; 'cluster.sh down --purge' starts over from scratch"
}

# --- health --------------------------------------------------------------------
etcd_healthy() { [[ "$(curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null)" == *'"health":"true"'* ]]; }

apiserver_ready() {
  [[ "$(curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null)" == ok ]]
}

# controller manager: no serving port; ready once its namespace controller has
# started and the garbage collector has synced its informers (from its log).
cm_started() {
  awk '/cluster.sh starting/ { g = 0; n = 0 }
       /Garbage collector: all resource monitors have synced/ { g = 1 }
       /Started controller.*namespace-controller/ { n = 1 }
       END { exit !(g && n) }' "$LOGS/kube-controller-manager.log" 2>/dev/null
}

wait_for() { # name description check-function
  local name=$1 what=$2 check=$3 deadline=$((SECONDS + READY_TIMEOUT))
  until "$check"; do
    running_pid "$name" >/dev/null || fail_component "$name" "exited before it was $what"
    ((SECONDS < deadline)) || fail_component "$name" "was not $what after ${READY_TIMEOUT}s (DATAMESH_READY_TIMEOUT)"
    sleep 0.2
  done
}

check_port_free() { # port component env-var; waits a little for a just-stopped process to let go
  local i
  for ((i = 0; i < 50; i++)); do port_in_use "$1" || return 0; sleep 0.2; done
  die "port $1 for $2 is already in use by another process; stop it, or set $3 to a free port, or run 'cluster.sh down --purge' to pick new ports"
}

# --- components ----------------------------------------------------------------
start_etcd() {
  check_port_free "$ETCD_PORT" etcd DATAMESH_ETCD_PORT
  check_port_free "$ETCD_PEER_PORT" "etcd (peer)" DATAMESH_ETCD_PEER_PORT
  mkdir -p "$STATE/etcd"; chmod 700 "$STATE/etcd"
  start_proc etcd "$ETCD_BIN/etcd" \
    --name=datamesh --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="datamesh=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --unsafe-no-fsync --log-level=warn
  wait_for etcd healthy etcd_healthy
}

# MutatingAdmissionPolicy is beta and off by default in Kubernetes 1.34: the
# feature gate and the v1beta1 API are turned on so the chart's policy that adds
# the operator's finalizers at creation (admission-finalizers.yaml) takes effect.
start_apiserver() {
  check_port_free "$APISERVER_PORT" kube-apiserver DATAMESH_APISERVER_PORT
  start_proc kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --cert-dir="$PKI" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=RBAC \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --disable-admission-plugins=ServiceAccount \
    --feature-gates=MutatingAdmissionPolicy=true --runtime-config=admissionregistration.k8s.io/v1beta1=true \
    --allow-privileged=true \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --endpoint-reconciler-type=none \
    --shutdown-send-retry-after=true \
    --profiling="${DATAMESH_APISERVER_PROFILING:-false}"
  wait_for kube-apiserver ready apiserver_ready
}

start_controller_manager() {
  start_proc kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$CM_KUBECONFIG" \
    --controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,clusterrole-aggregation-controller,root-ca-certificate-publisher-controller \
    --use-service-account-credentials=false --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0 \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-name="$CLUSTER_NAME" --profiling=false
  wait_for kube-controller-manager started cm_started
}

print_env() { echo "export KUBECONFIG=$ADMIN_KUBECONFIG"; }

# --- commands ------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS
  take_lock
  resolve_binaries
  load_ports
  if [[ -n "$APISERVER_PORT" ]] && running_pid etcd >/dev/null && running_pid kube-apiserver >/dev/null &&
    running_pid kube-controller-manager >/dev/null && apiserver_ready; then
    log "already up: https://127.0.0.1:$APISERVER_PORT (state $STATE)"
    print_env
    return
  fi
  ensure_pki
  choose_ports
  mkdir -p "$USERS" "$RUN" "$LOGS"
  write_kubeconfig "$ADMIN_KUBECONFIG" admin "$PKI/admin"
  write_kubeconfig "$CM_KUBECONFIG" system:kube-controller-manager "$PKI/controller-manager"
  # preflight: fail before starting anything if a port we need is taken
  if ! running_pid etcd >/dev/null; then
    check_port_free "$ETCD_PORT" etcd DATAMESH_ETCD_PORT
    check_port_free "$ETCD_PEER_PORT" "etcd (peer)" DATAMESH_ETCD_PEER_PORT
  fi
  running_pid kube-apiserver >/dev/null || check_port_free "$APISERVER_PORT" kube-apiserver DATAMESH_APISERVER_PORT
  running_pid etcd >/dev/null || { log "starting etcd on 127.0.0.1:$ETCD_PORT"; start_etcd; }
  running_pid kube-apiserver >/dev/null || { log "starting kube-apiserver on 127.0.0.1:$APISERVER_PORT"; start_apiserver; }
  wait_for kube-apiserver ready apiserver_ready
  running_pid kube-controller-manager >/dev/null || { log "starting kube-controller-manager"; start_controller_manager; }
  DONE=true
  log "up in $((SECONDS - t0))s: https://127.0.0.1:$APISERVER_PORT (state $STATE, logs $LOGS)"
  print_env
}

cmd_down() {
  local purge=false
  case "${1:-}" in
    "") ;;
    --purge) purge=true ;;
    *) die "usage: cluster.sh down [--purge]" ;;
  esac
  take_lock
  stop_proc kube-controller-manager
  stop_proc kube-apiserver
  stop_proc etcd
  stop_strays
  if $purge; then
    # Only what this script owns: postgres.sh may keep its data in $STATE/postgres.
    rm -rf "$PKI" "$STATE/etcd" "$LOGS" "$RUN" "$USERS" "$ADMIN_KUBECONFIG" "$CM_KUBECONFIG" "$PORTS_FILE" "$STATE/.lock"
    rmdir "$STATE" 2>/dev/null || true
    log "down; state purged"
  else
    log "down; state kept in $STATE (use 'down --purge' to delete it)"
  fi
}

cmd_status() {
  local c pid ok=0
  load_ports
  for c in "${COMPONENTS[@]}"; do
    if pid="$(running_pid "$c")"; then printf '%-24s running  pid %-7s log %s\n' "$c" "$pid" "$LOGS/$c.log"
    else printf '%-24s stopped\n' "$c"; ok=1; fi
  done
  if [[ -n "$APISERVER_PORT" ]] && apiserver_ready; then
    echo "apiserver                https://127.0.0.1:$APISERVER_PORT  readyz ok"
  else
    echo "apiserver                ${APISERVER_PORT:+https://127.0.0.1:$APISERVER_PORT  }not ready"; ok=1
  fi
  [[ -n "$ETCD_PORT" ]] && echo "etcd                     http://127.0.0.1:$ETCD_PORT"
  echo "state                    $STATE"
  [[ -f "$ADMIN_KUBECONFIG" ]] && echo "KUBECONFIG               $ADMIN_KUBECONFIG"
  return $ok
}

cmd_env() {
  [[ -f "$ADMIN_KUBECONFIG" ]] || die "no cluster in $STATE; run: bash scripts/cluster.sh up"
  print_env
}

cmd_user() {
  local name=${1:-} g subj
  [[ -n "$name" ]] || die "usage: cluster.sh user NAME [GROUP...]"
  shift
  for g in "$name" "$@"; do
    [[ "$g" =~ ^[A-Za-z0-9][A-Za-z0-9:._@-]*$ ]] || die "invalid user or group name '$g' (allowed: letters, digits, : . _ @ -)"
  done
  [[ -f "$PKI/ca.key" ]] || die "no cluster CA in $PKI; run: bash scripts/cluster.sh up"
  load_ports
  [[ -n "$APISERVER_PORT" ]] || die "no API server port in $PORTS_FILE; run: bash scripts/cluster.sh up"
  take_lock
  mkdir -p "$USERS"; chmod 700 "$USERS"
  subj="/CN=$name"
  for g in "$@"; do subj="$subj/O=$g"; done
  issue_cert ca "$USERS/$name" "$subj" clientAuth
  write_kubeconfig "$USERS/$name.kubeconfig" "$name" "$USERS/$name"
  echo "$USERS/$name.kubeconfig"
}

require_up() {
  load_ports
  [[ -n "$APISERVER_PORT" && -f "$ADMIN_KUBECONFIG" ]] || die "no cluster in $STATE; run: bash scripts/cluster.sh up"
}

restart_flag() {
  case "${1:-}" in
    "") ;;
    --kill) echo --kill ;;
    *) die "usage: cluster.sh restart-apiserver|restart-etcd [--kill]" ;;
  esac
}

cmd_restart_apiserver() {
  local t0=$SECONDS kill
  kill="$(restart_flag "$@")"
  take_lock; require_up; resolve_binaries
  running_pid etcd >/dev/null || die "etcd is not running; run: bash scripts/cluster.sh up"
  stop_proc kube-apiserver "$kill"
  log "starting kube-apiserver on 127.0.0.1:$APISERVER_PORT"
  start_apiserver
  DONE=true
  log "kube-apiserver restarted, ready in $((SECONDS - t0))s"
}

cmd_restart_etcd() {
  local t0=$SECONDS kill
  kill="$(restart_flag "$@")"
  take_lock; require_up; resolve_binaries
  stop_proc etcd "$kill"
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  start_etcd
  DONE=true # etcd is back; if the API server does not recover, report it but keep etcd
  log "etcd ready after $((SECONDS - t0))s"
  if running_pid kube-apiserver >/dev/null; then wait_for kube-apiserver ready apiserver_ready; fi
  log "etcd restarted, ready in $((SECONDS - t0))s"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  up) cmd_up ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  user) cmd_user "$@" ;;
  restart-apiserver) cmd_restart_apiserver "$@" ;;
  restart-etcd) cmd_restart_etcd "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
