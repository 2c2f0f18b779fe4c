#!/usr/bin/env bash
# Local PostgreSQL for development and tests. Owns one server instance under
# $DATAMESH_STATE/postgres (default <repo>/.local/cluster/postgres): its data dir,
# log and saved password. It listens on 127.0.0.1:$DATAMESH_PG_PORT only (TCP;
# no Unix socket), with a superuser `datamesh` (password auth) and a database
# `datamesh`. Installs Debian's PostgreSQL server with apt-get if none is found.
# TLS is on (a self-signed server certificate) and members of the role
# `datamesh_certificate` sign in with a client certificate of a local client
# CA (`cert` in pg_hba.conf), whose files `env` exports for the operator as
# DATAMESH_CLIENT_CA_CERT and DATAMESH_CLIENT_CA_KEY.
#
#   postgres.sh up              init (once) and start; prints `export DATAMESH_PG_URL=...`
#   postgres.sh down [--purge]  stop; --purge also deletes the data
#   postgres.sh env             prints `export DATAMESH_PG_URL=...`
#   postgres.sh status          exit 0 only if it runs
#
# Environment: DATAMESH_STATE, DATAMESH_PG_PORT (default 55432),
# DATAMESH_PG_PASSWORD (default datamesh; fixed at first init),
# DATAMESH_PG_BIN (server bin dir; default: newest /usr/lib/postgresql/*/bin).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
STATE="${DATAMESH_STATE:-$repo/.local/cluster}"
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
PGSTATE="$STATE/postgres"
DATA="$PGSTATE/data"
LOGFILE="$PGSTATE/postgres.log"
PWFILE="$PGSTATE/password"
TLS="$PGSTATE/tls"
PORT="${DATAMESH_PG_PORT:-55432}"
PG_SUPERUSER=datamesh
PG_DATABASE=datamesh

log() { echo "postgres: $*" >&2; }
die() { echo "postgres: error: $*" >&2; exit 1; }

# --- server binaries -------------------------------------------------------------
has_server() { [[ -x "$1/pg_ctl" && -x "$1/initdb" && -x "$1/postgres" && -x "$1/psql" ]]; }

find_pg_bin() {
  local d
  if [[ -n "${DATAMESH_PG_BIN:-}" ]]; then
    has_server "$DATAMESH_PG_BIN" || die "DATAMESH_PG_BIN=$DATAMESH_PG_BIN lacks pg_ctl, initdb, postgres or psql"
    echo "$DATAMESH_PG_BIN"; return
  fi
  while read -r d; do
    if has_server "$d"; then echo "$d"; return; fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
  return 1
}

install_pg() {
  [[ "$(id -u)" == 0 ]] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin; install one (sudo apt-get install postgresql) or set DATAMESH_PG_BIN"
  command -v apt-get >/dev/null || die "no PostgreSQL server found and no apt-get; install PostgreSQL and set DATAMESH_PG_BIN to its bin dir"
  log "installing Debian's PostgreSQL server with apt-get (once)"
  # Keep the package from creating (and starting) its own 'main' cluster on 5432.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/datamesh.conf
  if ! apt-cache policy postgresql 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq || die "apt-get update failed; check the network and rerun"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2 ||
    die "apt-get install postgresql failed (output above); fix it and rerun"
}

# --- running as the right user (postgres refuses to run as root) -----------------
if [[ "$(id -u)" == 0 ]]; then
  PG_USER=postgres
  as_pg() { (cd / && runuser -u "$PG_USER" -- "$@"); }
else
  PG_USER="$(id -un)"
  as_pg() { "$@"; }
fi

ensure_pg_user() {
  [[ "$(id -u)" == 0 ]] || return 0
  id "$PG_USER" >/dev/null 2>&1 && return
  log "creating system user $PG_USER"
  useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home --shell /usr/sbin/nologin "$PG_USER" ||
    die "could not create the $PG_USER user; create it (useradd --system postgres) and rerun"
}

port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { [[ -f "$DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

running_port() { sed -n 4p "$DATA/postmaster.pid" 2>/dev/null; } # line 4 of postmaster.pid is the port

password() {
  [[ -f "$PWFILE" ]] || die "no saved password in $PWFILE; run: bash scripts/postgres.sh up"
  cat "$PWFILE"
}

print_env() {
  echo "export DATAMESH_PG_URL=postgres://$PG_SUPERUSER:$(password)@127.0.0.1:$1/$PG_DATABASE?sslmode=disable"
  echo "export DATAMESH_CLIENT_CA_CERT=$TLS/client-ca.crt DATAMESH_CLIENT_CA_KEY=$TLS/client-ca.key"
}

# The server's certificate, and the client CA whose certificates members of
# datamesh_certificate sign in with (ECDSA P-256; throwaway, local only).
# Added once to a data directory made before it had them.
ensure_tls() {
  [[ -f "$DATA/datamesh-tls" ]] && return
  command -v openssl >/dev/null || die "openssl not found; install it (apt-get install openssl) and rerun"
  log "making the server certificate and the client CA in $TLS"
  mkdir -p "$TLS"
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      -keyout "$TLS/server.key" -out "$TLS/server.crt" 2>/dev/null
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=datamesh local client CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$TLS/client-ca.key" -out "$TLS/client-ca.crt" 2>/dev/null
  ) || die "openssl could not make the certificates in $TLS"
  chmod 644 "$TLS/server.crt" "$TLS/client-ca.crt"
  chmod 755 "$TLS"
  chown "$PG_USER" "$TLS/server.key" "$TLS/server.crt" "$TLS/client-ca.crt"
  cat >>"$DATA/postgresql.conf" <<EOF

# TLS, and client certificates of the datamesh client CA (scripts/postgres.sh)
ssl = on
ssl_cert_file = '$TLS/server.crt'
ssl_key_file = '$TLS/server.key'
ssl_ca_file = '$TLS/client-ca.crt'
EOF
  # first match wins: certificate roles sign in with a certificate over TLS
  # and nothing else; every other role as before
  { printf '%s\n' \
      "# datamesh: certificate-authenticated agreement roles (scripts/postgres.sh)" \
      "hostssl all +datamesh_certificate 127.0.0.1/32 cert" \
      "host    all +datamesh_certificate 127.0.0.1/32 reject"
    cat "$DATA/pg_hba.conf"; } >"$DATA/pg_hba.conf.new"
  mv "$DATA/pg_hba.conf.new" "$DATA/pg_hba.conf"
  chown "$PG_USER" "$DATA/pg_hba.conf"
  chmod 600 "$DATA/pg_hba.conf"
  touch "$DATA/datamesh-tls"
}

init_db() {
  local pw=${DATAMESH_PG_PASSWORD:-datamesh} tmp
  [[ "$pw" =~ ^[A-Za-z0-9._~-]+$ ]] || die "DATAMESH_PG_PASSWORD may only contain letters, digits and . _ ~ - (it goes into a URL as is)"
  log "initializing a database cluster in $DATA"
  mkdir -p "$DATA"
  chmod 700 "$DATA"
  tmp="$(mktemp)"
  echo "$pw" >"$tmp"
  chown -R "$PG_USER" "$PGSTATE" "$tmp"
  as_pg "$PG_BIN/initdb" -D "$DATA" -U "$PG_SUPERUSER" --pwfile="$tmp" -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$PGSTATE/initdb.log" 2>&1 ||
    { rm -f "$tmp"; cat "$PGSTATE/initdb.log" >&2; die "initdb failed (output above); fix it, then rerun 'postgres.sh down --purge' and 'postgres.sh up'"; }
  rm -f "$tmp"
  cat >>"$DATA/postgresql.conf" <<'EOF'

# datamesh local development settings (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''	# TCP on loopback only
max_connections = 200
fsync = off			# throwaway data: speed over crash safety
synchronous_commit = off
full_page_writes = off
EOF
  (umask 077 && echo "$pw" >"$PWFILE")
}

# --- commands ------------------------------------------------------------------
cmd_up() {
  local t0=$SECONDS pw exists
  PG_BIN="$(find_pg_bin)" || { install_pg; PG_BIN="$(find_pg_bin)" || die "PostgreSQL installed but no server found in /usr/lib/postgresql/*/bin"; }
  ensure_pg_user
  mkdir -p "$PGSTATE"
  if [[ "$(id -u)" == 0 ]]; then
    chown "$PG_USER" "$PGSTATE"
    as_pg test -x "$PGSTATE" || die "user $PG_USER cannot reach $PGSTATE; make its parent directories world-searchable (chmod o+x) or set DATAMESH_STATE elsewhere"
  fi
  [[ -f "$DATA/PG_VERSION" ]] || init_db
  running || ensure_tls
  if [[ -n "${DATAMESH_PG_PASSWORD:-}" && "$DATAMESH_PG_PASSWORD" != "$(password)" ]]; then
    log "warning: DATAMESH_PG_PASSWORD differs from the password set at init, which stays in use; 'down --purge' to change it"
  fi
  if running; then
    log "already up on 127.0.0.1:$(running_port) (data $DATA)"
    print_env "$(running_port)"
    return
  fi
  port_in_use "$PORT" && die "port $PORT is in use by another process; stop it or set DATAMESH_PG_PORT to a free port"
  log "starting PostgreSQL on 127.0.0.1:$PORT"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -o "-p $PORT" -w -t 60 start >/dev/null; then
    { echo "postgres: error: PostgreSQL did not start. Last lines of $LOGFILE:"; tail -n 30 "$LOGFILE" 2>/dev/null | sed 's/^/    /'; } >&2
    die "fix the cause above and rerun; 'postgres.sh down --purge' starts over from scratch"
  fi
  pw="$(password)"
  exists="$(PGPASSWORD="$pw" "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$PG_SUPERUSER" -d postgres -qtAX \
    -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" || die "could not connect to PostgreSQL on 127.0.0.1:$PORT as $PG_SUPERUSER (see above; log $LOGFILE)"
  if [[ "$exists" != 1 ]]; then
    PGPASSWORD="$pw" "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$PG_SUPERUSER" -d postgres -qX \
      -c "CREATE DATABASE $PG_DATABASE" || die "could not create database $PG_DATABASE (see above)"
  fi
  log "up in $((SECONDS - t0))s (data $DATA, log $LOGFILE)"
  print_env "$PORT"
}

cmd_down() {
  local purge=false pid i
  case "${1:-}" in
    "") ;;
    --purge) purge=true ;;
    *) die "usage: postgres.sh down [--purge]" ;;
  esac
  if [[ -f "$DATA/postmaster.pid" ]]; then
    PG_BIN="$(find_pg_bin)" || die "no PostgreSQL server binaries found to stop $DATA; set DATAMESH_PG_BIN"
    if running; then
      log "stopping PostgreSQL (data $DATA)"
      if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null; then
        pid="$(head -1 "$DATA/postmaster.pid" 2>/dev/null || true)"
        if [[ "$pid" =~ ^[0-9]+$ ]]; then
          log "fast shutdown timed out; sending SIGKILL to postmaster $pid"
          kill -KILL "$pid" 2>/dev/null || true
          for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
      fi
    fi
  fi
  if $purge; then
    rm -rf "$PGSTATE"
    rmdir "$STATE" 2>/dev/null || true # only if cluster.sh left nothing there
    log "down; data purged"
  else
    log "down; data kept in $DATA (use 'down --purge' to delete it)"
  fi
}

cmd_env() {
  [[ -f "$DATA/PG_VERSION" ]] || die "no PostgreSQL in $PGSTATE; run: bash scripts/postgres.sh up"
  local port
  port="$(running_port || true)"
  print_env "${port:-$PORT}"
}

cmd_status() {
  PG_BIN="$(find_pg_bin)" || { echo "postgres: no server installed"; return 1; }
  if running; then echo "postgres running on 127.0.0.1:$(running_port) (data $DATA, log $LOGFILE)"
  else echo "postgres stopped (data $DATA)"; return 1; fi
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  up) cmd_up ;;
  down) cmd_down "$@" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
