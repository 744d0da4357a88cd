#!/usr/bin/env bash
# deploy/up.sh — bring up the whole Plan 63 tracker on this machine and load Kế hoạch 63/KH-UBND.
#
# Why: one command takes a fresh checkout to a working stack, so nobody has to know the order
# (NATS before provisioning, the stream before the API, the API before the seed) or the env vars.
#
# What it does, in order:
#   1. installs the Debian packages it needs when missing (nats-server, postgresql, curl);
#   2. NATS: uses the server at NATS_URL when one answers, else starts a private JetStream
#      nats-server on the URL's port with its data in .stack/nats (pid in .stack/nats.pid);
#   3. PostgreSQL: uses the server of DATABASE_URL when it answers, else initialises and starts a
#      private cluster in .stack/pg (127.0.0.1, the URL's port, trust auth); then creates the
#      URL's database if missing;
#   4. builds the release binaries (cargo build --release -p command-api -p remediation-admin);
#   5. creates the token secret .stack/token-secret on first start (used via TOKEN_SECRET_FILE);
#   6. provisions the JetStream stream (remediation-admin provision);
#   7. starts command-api in the background (pid .stack/command-api.pid, log .stack/logs/), or
#      leaves it running when it already runs the current binary with the same settings, and
#      waits until GET /readyz answers 200;
#   8. loads the Plan 63 seed through the command handler (a repeat appends nothing);
#   9. prints the URLs, the log locations and one demo bearer token per role, which it also
#      writes to .stack/tokens.env (`source .stack/tokens.env`).
#
# It is idempotent: a second run leaves running services alone and the seed appends nothing.
# It returns once everything is up; deploy/down.sh stops what it started.
#
# Settings (environment): NATS_URL (nats://127.0.0.1:4222), DATABASE_URL
# (postgres://postgres@127.0.0.1:5432/kh63), COMMAND_API_ADDR (127.0.0.1:8080), TOKEN_SECRET or
# TOKEN_SECRET_FILE (default .stack/token-secret), STREAM_REPLICAS, DUPLICATE_WINDOW_SECS,
# LOG_FORMAT=json, RUST_LOG — passed on to the binaries.
set -Eeuo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

case ${1:-} in
-h | --help)
    sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*) die "usage: deploy/up.sh (no arguments; settings come from the environment)" ;;
esac

cd "$ROOT"
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/kh63}
export COMMAND_API_ADDR=${COMMAND_API_ADDR:-127.0.0.1:8080}

SEED_FILE="deploy/seed/ke-hoach-63.json"
API_BIN="$ROOT/target/release/command-api"
ADMIN_BIN="$ROOT/target/release/remediation-admin"
API_PID="$STACK/command-api.pid"
API_SETTINGS="$STACK/command-api.settings"
API_LOG="$LOGS/command-api.log"
NATS_PID="$STACK/nats.pid"

mkdir -p "$STACK" "$LOGS"
# One up.sh/down.sh at a time per checkout.
exec 9>"$STACK/.lock"
flock -n 9 || die "another deploy/up.sh or deploy/down.sh is running on this checkout"

trap 'printf "error: deploy/up.sh failed at line %s\n" "$LINENO" >&2' ERR

# --- 1. packages --------------------------------------------------------------------------------
step_packages() {
    say "checking required tools"
    ensure_packages nats postgresql curl
    command -v cargo >/dev/null ||
        die "cargo not found: install the Rust toolchain (https://rustup.rs) and re-run"
}

# --- 2. NATS ------------------------------------------------------------------------------------
nats_private_pid() {
    local pid
    pid=$(recorded_pid "$NATS_PID" nats-server) || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-sd $STACK/nats" || return 1
    printf '%s' "$pid"
}

# The client port of the running private nats-server (its "-p N" argument).
nats_private_port() {
    tr '\0' '\n' <"/proc/$1/cmdline" | sed -n '/^-p$/{n;p;q}'
}

start_private_nats() {
    local pid info="" i
    note "no NATS server answers; starting a private nats-server (JetStream, data .stack/nats)"
    mkdir -p "$STACK/nats"
    printf -- '--- %s starting nats-server\n' "$(date -Is)" >>"$LOGS/nats-server.log"
    spawn "$NATS_PID" "$LOGS/nats-server.log" \
        nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$STACK/nats"
    pid=$(read_pid "$NATS_PID")
    for ((i = 0; i < 300; i++)); do
        info=$(nats_info "$NATS_HOST" "$NATS_PORT") && break
        if ! pid_alive "$pid"; then
            tail -n 20 "$LOGS/nats-server.log" >&2
            die "nats-server exited during start-up (log: .stack/logs/nats-server.log)"
        fi
        sleep 0.1
    done
    [[ -n $info ]] || die "nats-server did not answer within 30 s (log: .stack/logs/nats-server.log)"
    note "private nats-server started (pid $pid)"
}

step_nats() {
    local info pid port=""
    parse_nats_url "$NATS_URL"
    say "NATS at $NATS_HOST:$NATS_PORT"
    if pid=$(nats_private_pid); then
        port=$(nats_private_port "$pid")
    fi
    if info=$(nats_info "$NATS_HOST" "$NATS_PORT"); then
        if [[ -n $port && $port == "$NATS_PORT" ]] && is_loopback "$NATS_HOST"; then
            note "private nats-server already running (pid $pid, data .stack/nats)"
        else
            note "a NATS server answers at $NATS_URL; using it"
            if [[ -n $port ]]; then
                note "(the private nats-server of an earlier run still runs on port $port; deploy/down.sh stops it)"
            fi
        fi
    elif tcp_open "$NATS_HOST" "$NATS_PORT"; then
        die "something listens on $NATS_HOST:$NATS_PORT but it is not a NATS server (NATS_URL=$NATS_URL)"
    else
        is_loopback "$NATS_HOST" ||
            die "no NATS server answers at $NATS_URL, and a private one can only be started on this machine (use a 127.0.0.1 URL)"
        if [[ -n $port ]]; then
            # One store directory, one server: move the running private server to the new port.
            note "the private nats-server runs on port $port; restarting it on port $NATS_PORT"
            stop_pid "$pid" "private nats-server"
        fi
        start_private_nats
        info=$(nats_info "$NATS_HOST" "$NATS_PORT") || die "the private nats-server stopped answering"
    fi
    [[ $info == *'"jetstream":true'* ]] ||
        die "the NATS server at $NATS_URL runs without JetStream; start it with -js"
}

# --- 3. PostgreSQL ------------------------------------------------------------------------------
init_private_pg() {
    local bindir=$1 locale_opt=(--no-locale)
    if [[ -e $PG_DATA ]] && [[ -n $(ls -A "$PG_DATA" 2>/dev/null) ]]; then
        die "$PG_DATA exists but holds no PostgreSQL cluster (a failed earlier start?); remove it and re-run"
    fi
    say "initialising a private PostgreSQL cluster in .stack/pg"
    mkdir -p "$PG_DATA"
    chmod 700 "$PG_DATA"
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "the postgres OS user is missing (is the postgresql package installed?)"
        chown postgres:postgres "$PG_DATA"
        runuser -u postgres -- test -w "$PG_DATA" ||
            die "the postgres OS user cannot reach $PG_DATA (a parent directory is not searchable by others); move the checkout or point DATABASE_URL at a running server"
    fi
    # UTF-8 for the plan's Vietnamese text; C.UTF-8 gives code-point order and Unicode case rules.
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        locale_opt=(--locale=C.UTF-8)
    fi
    pg_as_owner "$bindir/initdb" -D "$PG_DATA" -U "$PG_USER" -A trust -E UTF8 "${locale_opt[@]}" \
        >>"$LOGS/postgresql-initdb.log" 2>&1 ||
        {
            tail -n 20 "$LOGS/postgresql-initdb.log" >&2
            die "initdb failed (log: .stack/logs/postgresql-initdb.log)"
        }
    # TCP on loopback only; no Unix socket, so no dependency on /var/run/postgresql.
    printf '\n# deploy/up.sh\nlisten_addresses = '"'127.0.0.1'"'\nunix_socket_directories = '"''"'\n' \
        | pg_as_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# The port the running private cluster listens on (4th line of postmaster.pid).
private_pg_port() {
    sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null
}

start_private_pg() {
    local bindir
    bindir=$(pg_bindir)
    [[ -f "$PG_DATA/PG_VERSION" ]] || init_private_pg "$bindir"
    note "starting the private PostgreSQL cluster in .stack/pg on port $PG_PORT"
    touch "$LOGS/postgresql.log"
    if [[ $EUID -eq 0 ]]; then
        chown postgres:postgres "$LOGS/postgresql.log"
    fi
    # 9>&-: the server must not inherit the lock on .stack/.lock.
    pg_as_owner "$bindir/pg_ctl" start -D "$PG_DATA" -l "$LOGS/postgresql.log" -w -t 60 \
        -o "-p $PG_PORT" >/dev/null 9>&- ||
        {
            tail -n 20 "$LOGS/postgresql.log" >&2
            die "the private PostgreSQL did not start (log: .stack/logs/postgresql.log)"
        }
    pg_answers "$PG_HOST" "$PG_PORT" ||
        die "the private PostgreSQL started but does not answer at $PG_HOST:$PG_PORT"
    note "private PostgreSQL started"
}

step_postgres() {
    local port=""
    parse_database_url "$DATABASE_URL"
    say "PostgreSQL at $PG_HOST:$PG_PORT (database $PG_DB)"
    if private_pg_running; then
        port=$(private_pg_port)
    fi
    if pg_answers "$PG_HOST" "$PG_PORT"; then
        if [[ -n $port && $port == "$PG_PORT" ]] && is_loopback "$PG_HOST"; then
            note "private PostgreSQL already running (data .stack/pg)"
        else
            note "a PostgreSQL server answers at $PG_HOST:$PG_PORT; using it"
            if [[ -n $port ]]; then
                note "(the private PostgreSQL of an earlier run still runs on port $port; deploy/down.sh stops it)"
            fi
        fi
    elif tcp_open "$PG_HOST" "$PG_PORT"; then
        die "something listens on $PG_HOST:$PG_PORT but PostgreSQL does not answer there (DATABASE_URL=$DATABASE_URL)"
    else
        is_loopback "$PG_HOST" ||
            die "no PostgreSQL answers at $PG_HOST:$PG_PORT, and a private one can only be started on this machine (use a 127.0.0.1 URL)"
        note "no PostgreSQL answers at $PG_HOST:$PG_PORT"
        if [[ -n $port ]]; then
            note "the private PostgreSQL runs on port $port; restarting it on port $PG_PORT"
            pg_as_owner "$(pg_bindir)/pg_ctl" stop -D "$PG_DATA" -m fast -t 15 >/dev/null ||
                die "could not stop the private PostgreSQL to move it to port $PG_PORT"
        fi
        start_private_pg
    fi
    ensure_database
}

# --- 4. build -----------------------------------------------------------------------------------
step_build() {
    say "building release binaries (the first build takes several minutes)"
    cargo build --release -p command-api -p remediation-admin ||
        die "cargo build failed"
    [[ -x $API_BIN && -x $ADMIN_BIN ]] || die "build finished but $API_BIN or $ADMIN_BIN is missing"
}

# --- 5. token secret ----------------------------------------------------------------------------
step_secret() {
    say "token secret"
    if [[ -n ${TOKEN_SECRET:-} ]]; then
        note "using TOKEN_SECRET from the environment"
        return
    fi
    if [[ -n ${TOKEN_SECRET_FILE:-} ]]; then
        [[ -s $TOKEN_SECRET_FILE ]] || die "TOKEN_SECRET_FILE=$TOKEN_SECRET_FILE does not exist or is empty"
        TOKEN_SECRET_FILE=$(cd -- "$(dirname -- "$TOKEN_SECRET_FILE")" && pwd -P)/$(basename -- "$TOKEN_SECRET_FILE")
        note "using TOKEN_SECRET_FILE=$TOKEN_SECRET_FILE"
    else
        TOKEN_SECRET_FILE="$STACK/token-secret"
        if [[ ! -s $TOKEN_SECRET_FILE ]]; then
            (
                umask 077
                head -c 48 /dev/urandom | base64 -w0 >"$TOKEN_SECRET_FILE.tmp"
                mv "$TOKEN_SECRET_FILE.tmp" "$TOKEN_SECRET_FILE"
            )
            note "created .stack/token-secret (48 random bytes, base64)"
        else
            note "using .stack/token-secret"
        fi
        chmod 600 "$TOKEN_SECRET_FILE"
    fi
    export TOKEN_SECRET_FILE
}

# remediation-admin with its logging reduced to warnings (it logs to stdout, where its results
# also go) and without colours.
admin() {
    RUST_LOG=warn NO_COLOR=1 "$ADMIN_BIN" "$@"
}

# --- 6. provision -------------------------------------------------------------------------------
step_provision() {
    say "provisioning the JetStream stream"
    local out
    out=$(admin provision) || die "remediation-admin provision failed"
    note "$out"
}

# --- 7. command-api -----------------------------------------------------------------------------

# The settings command-api reads, as one text; a change restarts it. The secret appears only as a
# hash.
api_settings() {
    local name secret_hash
    if [[ -n ${TOKEN_SECRET:-} ]]; then
        secret_hash=$(printf '%s' "$TOKEN_SECRET" | sha256sum)
    else
        secret_hash="$TOKEN_SECRET_FILE $(sha256sum <"$TOKEN_SECRET_FILE")"
    fi
    printf 'token secret: %s\n' "${secret_hash%% *}"
    for name in NATS_URL COMMAND_API_ADDR DATABASE_URL STREAM_NAME STREAM_REPLICAS \
        DUPLICATE_WINDOW_SECS MAX_ATTEMPTS CACHE_CAPACITY NATS_TIMEOUT_MS LOG_FORMAT RUST_LOG; do
        printf '%s=%s\n' "$name" "${!name:-}"
    done
}

# host:port to reach COMMAND_API_ADDR from this machine (a wildcard bind is reached on loopback).
api_base() {
    local addr=$COMMAND_API_ADDR
    case $addr in
    0.0.0.0:*) addr="127.0.0.1:${addr#*:}" ;;
    '[::]:'*) addr="[::1]:${addr##*:}" ;;
    esac
    printf 'http://%s' "$addr"
}

api_running_pid() {
    local pid exe
    pid=$(read_pid "$API_PID") || return 1
    pid_alive "$pid" || return 1
    exe=$(pid_exe "$pid") || return 1
    [[ $exe == "$API_BIN" ]] || return 1
    printf '%s' "$pid"
}

start_api() {
    local host port
    port=${COMMAND_API_ADDR##*:}
    host=${COMMAND_API_ADDR%:*}
    case $host in 0.0.0.0) host=127.0.0.1 ;; '[::]') host=::1 ;; esac
    if tcp_open "$host" "$port"; then
        die "COMMAND_API_ADDR=$COMMAND_API_ADDR is already in use by another process (not the one in .stack/command-api.pid); stop it or choose another address"
    fi
    printf -- '--- %s starting %s\n' "$(date -Is)" "$API_BIN" >>"$API_LOG"
    # NO_COLOR: plain text in the log file (tracing colours its output even when not on a tty).
    spawn "$API_PID" "$API_LOG" env NO_COLOR=1 "$API_BIN"
    # Mode 600: DATABASE_URL may carry a password.
    (
        umask 077
        api_settings >"$API_SETTINGS"
    )
    note "command-api started (pid $(read_pid "$API_PID"), log .stack/logs/command-api.log)"
}

# The log of the latest start (from its "--- ... starting" line), at most 30 lines, to stderr.
api_log_tail() {
    printf -- '--- .stack/logs/command-api.log (latest start):\n' >&2
    awk '/^--- .* starting /{n=0} {line[n++]=$0} END{for(i=(n>30?n-30:0);i<n;i++)print line[i]}' \
        "$API_LOG" >&2
}

wait_ready() {
    local url pid code i
    url="$(api_base)/readyz"
    pid=$(read_pid "$API_PID")
    for ((i = 0; i < 120; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        if [[ $code == 200 ]]; then
            note "ready: GET $url -> 200"
            return 0
        fi
        if ! pid_alive "$pid"; then
            api_log_tail
            die "command-api (pid $pid) exited during start-up"
        fi
        sleep 0.5
    done
    api_log_tail
    die "command-api did not become ready within 60 s (GET $url answered ${code:-nothing})"
}

step_api() {
    local pid reason=""
    say "command-api on $COMMAND_API_ADDR"
    if pid=$(api_running_pid); then
        if pid_exe_deleted "$pid" || [[ $API_BIN -nt $API_PID ]]; then
            reason="the binary was rebuilt"
        elif [[ "$(api_settings)" != "$(cat "$API_SETTINGS" 2>/dev/null)" ]]; then
            reason="its settings changed"
        fi
        if [[ -n $reason ]]; then
            note "restarting command-api (pid $pid): $reason"
            stop_pid "$pid" command-api
            start_api
        else
            note "command-api already running (pid $pid); left as is"
        fi
    else
        start_api
    fi
    wait_ready
}

# --- 8. seed ------------------------------------------------------------------------------------
step_seed() {
    say "loading $SEED_FILE"
    local out
    out=$(admin seed --file "$SEED_FILE") || die "remediation-admin seed failed"
    note "$out"
}

# --- 9. summary and tokens ----------------------------------------------------------------------
token() {
    admin token "$@" || die "remediation-admin token $* failed"
}

step_summary() {
    local base po dof staff auditor viewer logs="command-api.log"
    base=$(api_base)
    say "issuing demo tokens"
    po=$(token --role province-office --user vp-ubnd)
    dof=$(token --role department-of-finance --unit so-tai-chinh --user stc)
    staff=$(token --role unit-staff --unit so-nong-nghiep-va-moi-truong --user snnmt)
    auditor=$(token --role auditor --user auditor)
    viewer=$(token --role viewer --user viewer)
    (
        umask 077
        {
            printf '# Demo bearer tokens written by deploy/up.sh on %s (valid 30 days).\n' "$(date -Is)"
            printf '# Usage: source .stack/tokens.env\n'
            printf 'export COMMAND_API=%s\n' "$base"
            printf 'export TOKEN_PROVINCE_OFFICE=%s\n' "$po"
            printf 'export TOKEN_DEPARTMENT_OF_FINANCE=%s\n' "$dof"
            printf 'export TOKEN_UNIT_STAFF=%s\n' "$staff"
            printf 'export TOKEN_AUDITOR=%s\n' "$auditor"
            printf 'export TOKEN_VIEWER=%s\n' "$viewer"
        } >"$STACK/tokens.env.tmp"
        mv "$STACK/tokens.env.tmp" "$STACK/tokens.env"
    )
    if [[ -f $NATS_PID ]]; then logs+=", nats-server.log"; fi
    if [[ -f $PG_DATA/PG_VERSION ]]; then logs+=", postgresql.log"; fi
    local db_shown=$DATABASE_URL
    if [[ -n $PG_PASSWORD ]]; then db_shown=${DATABASE_URL/:*@/:***@}; fi
    cat <<EOF

Plan 63 tracker is up.
  command API   $base/v1/commands/<command>
  OpenAPI       $base/openapi.json
  metrics       $base/metrics
  readiness     $base/readyz
  NATS          $NATS_URL
  PostgreSQL    $db_shown
  logs          .stack/logs/ ($logs)
  stop          deploy/down.sh   (deploy/down.sh --purge also deletes .stack/)

Demo bearer tokens, valid 30 days (also in .stack/tokens.env: source .stack/tokens.env):
  province-office (user vp-ubnd)
    TOKEN_PROVINCE_OFFICE=$po
  department-of-finance (unit so-tai-chinh, user stc)
    TOKEN_DEPARTMENT_OF_FINANCE=$dof
  unit-staff (unit so-nong-nghiep-va-moi-truong, user snnmt)
    TOKEN_UNIT_STAFF=$staff
  auditor (user auditor)
    TOKEN_AUDITOR=$auditor
  viewer (user viewer)
    TOKEN_VIEWER=$viewer

Try:
  source .stack/tokens.env
  curl -s -XPOST $base/v1/commands/set-item-deadline -H "Authorization: Bearer \$TOKEN_PROVINCE_OFFICE" \\
       -d '{"item_id":"kh-63-2025-01","due_on":"2025-12-31"}'
EOF
}

step_packages
step_nats
step_postgres
step_build
step_secret
step_provision
step_api
step_seed
step_summary
