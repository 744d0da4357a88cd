#!/usr/bin/env bash
# deploy/up.sh — bring up the whole Plan 63 tracker on this machine and load Kế hoạch 63/KH-UBND.
#
# Why: one command takes a fresh checkout to a working stack, so nobody has to know the order
# (NATS before provisioning, the stream before the services, the command API before the
# projector, the projector before the query API and the seed) or the env vars.
#
# What it does, in order:
#   1. installs the Debian packages it needs when missing (nats-server, postgresql, curl);
#   2. builds the release binaries in one go (cargo build --release -p remediation-admin
#      -p command-api -p projector -p query-api);
#   3. NATS credentials: one nkey seed per service (command-api, projector, query-api, admin) in
#      .stack/nats/credentials/<service>.nk, mode 0600, made on first start and kept, and the
#      nats-server accounts that grant each service only its own work (auth.conf beside them;
#      `remediation-admin nats-credentials`). With NATS_CREDENTIALS_DIR set, the seeds in that
#      directory are used instead and nothing is generated;
#   4. NATS: starts a private JetStream nats-server on NATS_URL's port (default 4223; the
#      machine's own server on 4222 runs without authentication and is left alone) with its
#      data in .stack/nats, configured by .stack/nats/nats-server.conf, which includes the
#      accounts (pid in .stack/nats.pid); a running private server whose accounts changed is
#      told to reload them. A server up.sh did not start is used only with NATS_CREDENTIALS_DIR
#      (the seeds its accounts know);
#   5. PostgreSQL: uses the server of DATABASE_URL when it answers, else initialises and starts a
#      private cluster in .stack/pg (127.0.0.1, the URL's port, trust auth); then creates the
#      URL's database if missing; creates the token secret .stack/token-secret on first start
#      (used via TOKEN_SECRET_FILE);
#   6. provisions the JetStream stream (remediation-admin provision, with the admin seed);
#   7. starts the services one after the other, each once the one before is ready, each logging
#      in to NATS with its own seed (NATS_NKEY_FILE):
#        command-api  COMMAND_API_ADDR (127.0.0.1:8080)  appends commands' events to the stream
#        projector    PROJECTOR_ADDR   (127.0.0.1:8081)  applies the stream to the read model
#                     (migrates the schemas core and audit, creates the role kh63_reader)
#        query-api    QUERY_API_ADDR   (127.0.0.1:8082)  dashboards, exports and the audit trail
#                     over the read model, read as kh63_reader; ready while no projection has
#                     stopped or lags beyond READY_MAX_LAG_EVENTS / READY_MAX_LAG_SECS
#      Each runs in the background (pid .stack/NAME.pid, log .stack/logs/NAME.log) and counts as
#      ready when GET /readyz answers 200. One already running is left alone unless its binary was
#      rebuilt or the settings it reads (its NATS seed included) changed (recorded in
#      .stack/NAME.settings); then it is restarted;
#   8. loads the Plan 63 seed through the command handler (a repeat appends nothing);
#   9. waits until the projector has applied the stream up to its last sequence (every
#      projection's lag 0 in its /readyz), so the dashboards show Plan 63 when up.sh returns;
#  10. prints the URLs, the log locations and one demo bearer token per role (the Department of
#      Finance's also holds unit staff of so-tai-chinh), which it also writes to
#      .stack/tokens.env (`source .stack/tokens.env`).
#
# It is idempotent: a second run leaves running services alone and the seed appends nothing.
# It returns once everything is up; deploy/down.sh stops what it started.
#
# Settings (environment), passed on to the binaries: NATS_URL (nats://127.0.0.1:4223),
# NATS_CREDENTIALS_DIR (the seeds for a NATS server up.sh did not start),
# DATABASE_URL (postgres://postgres@127.0.0.1:5432/kh63), COMMAND_API_ADDR (127.0.0.1:8080),
# PROJECTOR_ADDR (127.0.0.1:8081), QUERY_API_ADDR (127.0.0.1:8082), TOKEN_SECRET or
# TOKEN_SECRET_FILE (default .stack/token-secret), STREAM_NAME, STREAM_REPLICAS,
# DUPLICATE_WINDOW_SECS, SCHEMA_PREFIX, BATCH_SIZE, BATCH_INTERVAL_MS, READY_MAX_LAG_EVENTS,
# READY_MAX_LAG_SECS, LOG_FORMAT=json, RUST_LOG.
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
# Not 4222: that is where a machine's shared, unauthenticated nats-server usually listens.
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4223}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/kh63}
export COMMAND_API_ADDR=${COMMAND_API_ADDR:-127.0.0.1:8080}
export PROJECTOR_ADDR=${PROJECTOR_ADDR:-127.0.0.1:8081}
export QUERY_API_ADDR=${QUERY_API_ADDR:-127.0.0.1:8082}

SEED_FILE="deploy/seed/ke-hoach-63.json"
ADMIN_BIN="$ROOT/target/release/remediation-admin"
NATS_PID="$STACK/nats.pid"
NATS_CONF="$STACK/nats/nats-server.conf"
# The seeds the services log in with: generated here, or supplied for a server of one's own.
CREDENTIALS_DIR=${NATS_CREDENTIALS_DIR:-$STACK/nats/credentials}

# Per service: the variable holding its address, and what it reads from the environment — a
# change of any of these restarts it ("token-secret" stands for the secret and "nats-key" for the
# service's NATS seed, both compared by hash).
declare -A SERVICE_ADDR_VAR=(
    [command-api]=COMMAND_API_ADDR
    [projector]=PROJECTOR_ADDR
    [query-api]=QUERY_API_ADDR
)
declare -A SERVICE_READS=(
    [command-api]="token-secret nats-key NATS_URL COMMAND_API_ADDR STREAM_NAME STREAM_REPLICAS DUPLICATE_WINDOW_SECS MAX_ATTEMPTS CACHE_CAPACITY NATS_TIMEOUT_MS LOG_FORMAT RUST_LOG"
    [projector]="nats-key NATS_URL DATABASE_URL PROJECTOR_ADDR STREAM_NAME SCHEMA_PREFIX BATCH_SIZE BATCH_INTERVAL_MS LOG_FORMAT RUST_LOG"
    [query-api]="token-secret nats-key NATS_URL DATABASE_URL QUERY_API_ADDR STREAM_NAME SCHEMA_PREFIX READY_MAX_LAG_EVENTS READY_MAX_LAG_SECS LOG_FORMAT RUST_LOG"
)

mkdir -p "$STACK" "$LOGS"
# One up.sh/down.sh at a time per checkout.
exec 9>"$STACK/.lock"
flock -n 9 || die "another deploy/up.sh or deploy/down.sh is running on this checkout"

trap 'printf "error: deploy/up.sh failed at line %s\n" "$LINENO" >&2' ERR

# --- 1. packages --------------------------------------------------------------------------------
step_packages() {
    say "checking required tools"
    ensure_packages nats postgresql curl c-build
    command -v cargo >/dev/null ||
        die "cargo not found: install the Rust toolchain (https://rustup.rs) and re-run"
}

# note_server_in_use HOST PORT PRIVATE_PORT PRIVATE ANSWERS: a server answers at HOST:PORT; says
# whether it is this checkout's private one (PRIVATE, e.g. "nats-server (data .stack/nats)",
# running on PRIVATE_PORT, empty when none runs) or another ("a ANSWERS; using it").
note_server_in_use() {
    local host=$1 port=$2 private_port=$3 private=$4 answers=$5
    if [[ -n $private_port && $private_port == "$port" ]] && is_loopback "$host"; then
        note "private $private already running"
    else
        note "a $answers; using it"
        if [[ -n $private_port ]]; then
            note "(the private ${private%% *} of an earlier run still runs on port $private_port; deploy/down.sh stops it)"
        fi
    fi
}

# --- 3. NATS credentials ------------------------------------------------------------------------

# nkey_file SERVICE: the seed SERVICE logs in to NATS with.
nkey_file() {
    printf '%s/%s.nk' "$CREDENTIALS_DIR" "$1"
}

step_credentials() {
    local service out
    say "NATS credentials"
    if [[ -n ${NATS_CREDENTIALS_DIR:-} ]]; then
        for service in "${SERVICES[@]}" admin; do
            [[ -s $(nkey_file "$service") ]] ||
                die "NATS_CREDENTIALS_DIR=$NATS_CREDENTIALS_DIR has no $service.nk (remediation-admin nats-credentials --dir DIR writes the seeds and the auth.conf their server needs)"
        done
        CREDENTIALS_DIR=$(cd -- "$CREDENTIALS_DIR" && pwd -P)
        note "using the seeds in $CREDENTIALS_DIR"
        return
    fi
    # STREAM_NAME and SCHEMA_PREFIX name what the accounts grant; seeds already there are kept.
    out=$(admin nats-credentials --dir "$CREDENTIALS_DIR") ||
        die "remediation-admin nats-credentials failed"
    note "$out"
    # The private server's whole configuration. JetStream is here, not in -js/-sd flags: a
    # reload (after the accounts change) applies the file, and would turn JetStream off.
    (
        umask 077
        printf '# Written by deploy/up.sh: the private nats-server (JetStream, the accounts).\njetstream {\n    store_dir: "%s"\n}\ninclude "credentials/auth.conf"\n' \
            "$STACK/nats" >"$NATS_CONF.tmp"
        if cmp -s "$NATS_CONF.tmp" "$NATS_CONF"; then rm -f "$NATS_CONF.tmp"; else mv "$NATS_CONF.tmp" "$NATS_CONF"; fi
    )
}

# --- 4. NATS ------------------------------------------------------------------------------------
# The private nats-server: its command line names .stack/nats (-c .stack/nats/nats-server.conf;
# an earlier up.sh used -sd .stack/nats).
nats_private_pid() {
    recorded_pid "$NATS_PID" nats-server "$STACK/nats"
}

# The client port of the running private nats-server (its "-p N" argument).
nats_private_port() {
    tr '\0' '\n' <"/proc/$1/cmdline" | sed -n '/^-p$/{n;p;q}'
}

# nats_private_configured PID: true when the private server runs with the accounts' config (one
# started by an earlier up.sh may run without authentication).
nats_private_configured() {
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "-c $NATS_CONF "
}

start_private_nats() {
    local pid info="" i
    note "starting a private nats-server (JetStream, data .stack/nats, accounts .stack/nats/credentials/auth.conf)"
    mkdir -p "$STACK/nats"
    printf -- '--- %s starting nats-server\n' "$(date -Is)" >>"$LOGS/nats-server.log"
    spawn "$NATS_PID" "$LOGS/nats-server.log" \
        nats-server -c "$NATS_CONF" -a 127.0.0.1 -p "$NATS_PORT"
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
    local info pid="" port=""
    parse_nats_url "$NATS_URL"
    say "NATS at $NATS_HOST:$NATS_PORT"
    if pid=$(nats_private_pid); then
        port=$(nats_private_port "$pid")
    fi
    if [[ -z ${NATS_CREDENTIALS_DIR:-} && -n $port ]] &&
        { [[ $port != "$NATS_PORT" ]] || ! nats_private_configured "$pid"; }; then
        # One store directory, one server: move it to the new port, or give it its accounts.
        note "the private nats-server runs on port $port$(nats_private_configured "$pid" || printf ' without the accounts'); restarting it"
        stop_pid "$pid" "private nats-server"
        port=""
    fi
    if info=$(nats_info "$NATS_HOST" "$NATS_PORT"); then
        if [[ -n $port && $port == "$NATS_PORT" ]] && is_loopback "$NATS_HOST"; then
            note "private nats-server already running (pid $pid)"
            # Accounts rewritten since it started (a rotated seed, another STREAM_NAME): reload.
            if [[ $CREDENTIALS_DIR/auth.conf -nt $NATS_PID ]]; then
                note "its accounts changed; reloading them"
                kill -HUP "$pid" || die "could not make nats-server reload its accounts"
                touch "$NATS_PID"
            fi
        else
            [[ -n ${NATS_CREDENTIALS_DIR:-} ]] ||
                die "a NATS server that up.sh did not start answers at $NATS_URL; its accounts do not know the keys up.sh makes: set NATS_CREDENTIALS_DIR to a directory with the seeds it accepts (command-api.nk, projector.nk, query-api.nk, admin.nk; remediation-admin nats-credentials --dir DIR writes them and the auth.conf to give that server), or choose a free NATS_URL port for a private server"
            note "a NATS server answers at $NATS_URL; using it with the seeds in $CREDENTIALS_DIR"
        fi
    elif tcp_open "$NATS_HOST" "$NATS_PORT"; then
        die "something listens on $NATS_HOST:$NATS_PORT but it is not a NATS server (NATS_URL=$NATS_URL)"
    else
        [[ -z ${NATS_CREDENTIALS_DIR:-} ]] ||
            die "no NATS server answers at $NATS_URL (with NATS_CREDENTIALS_DIR set, up.sh starts none: the seeds belong to another server)"
        is_loopback "$NATS_HOST" ||
            die "no NATS server answers at $NATS_URL, and a private one can only be started on this machine (use a 127.0.0.1 URL)"
        start_private_nats
        info=$(nats_info "$NATS_HOST" "$NATS_PORT") || die "the private nats-server stopped answering"
    fi
    [[ $info == *'"jetstream":true'* ]] ||
        die "the NATS server at $NATS_URL runs without JetStream; start it with -js"
}

# --- 5. PostgreSQL ------------------------------------------------------------------------------
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
        note_server_in_use "$PG_HOST" "$PG_PORT" "$port" "PostgreSQL (data .stack/pg)" \
            "PostgreSQL server answers at $PG_HOST:$PG_PORT"
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

# --- 2. build -----------------------------------------------------------------------------------

# service_bin NAME: the service's release binary.
service_bin() {
    printf '%s' "$ROOT/target/release/$1"
}

# cargo_build PACKAGE...: one release build of the packages; its output also goes to
# .stack/logs/cargo-build.log.
cargo_build() {
    local args=() package
    for package in "$@"; do
        args+=(-p "$package")
    done
    say "building release binaries: cargo build --release ${args[*]} (the first build takes several minutes)"
    cargo build --release "${args[@]}" 2>&1 | tee "$LOGS/cargo-build.log" >&2
}

step_build() {
    local name
    cargo_build remediation-admin "${SERVICES[@]}" || die "cargo build failed"
    [[ -x $ADMIN_BIN ]] || die "build finished but $ADMIN_BIN is missing"
    for name in "${SERVICES[@]}"; do
        [[ -x $(service_bin "$name") ]] || die "build finished but $(service_bin "$name") is missing"
    done
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
    RUST_LOG=warn NO_COLOR=1 NATS_NKEY_FILE="$(nkey_file admin)" "$ADMIN_BIN" "$@"
}

# --- 6. provision -------------------------------------------------------------------------------
step_provision() {
    say "provisioning the JetStream stream"
    local out
    out=$(admin provision) || die "remediation-admin provision failed"
    note "$out"
}

# --- 7. services --------------------------------------------------------------------------------

# service_url NAME: http://host:port to reach the service from this machine (a wildcard bind is
# reached on loopback).
service_url() {
    local var=${SERVICE_ADDR_VAR[$1]}
    local addr=${!var}
    case $addr in
    0.0.0.0:*) addr="127.0.0.1:${addr#*:}" ;;
    '[::]:'*) addr="[::1]:${addr##*:}" ;;
    esac
    printf 'http://%s' "$addr"
}

# service_settings NAME: the settings the service reads, as one text; a change restarts it. The
# secret appears only as a hash.
service_settings() {
    local name secret_hash reads
    read -ra reads <<<"${SERVICE_READS[$1]}"
    for name in "${reads[@]}"; do
        if [[ $name == nats-key ]]; then
            secret_hash=$(sha256sum <"$(nkey_file "$1")")
            printf 'NATS seed: %s %s\n' "$(nkey_file "$1")" "${secret_hash%% *}"
        elif [[ $name != token-secret ]]; then
            printf '%s=%s\n' "$name" "${!name:-}"
        elif [[ -n ${TOKEN_SECRET:-} ]]; then
            secret_hash=$(printf '%s' "$TOKEN_SECRET" | sha256sum)
            printf 'token secret: %s\n' "${secret_hash%% *}"
        else
            secret_hash=$(sha256sum <"$TOKEN_SECRET_FILE")
            printf 'token secret: %s %s\n' "$TOKEN_SECRET_FILE" "${secret_hash%% *}"
        fi
    done
}

# service_pid NAME: the pid of the service we started, when it still runs this checkout's binary.
service_pid() {
    local pid
    pid=$(recorded_pid "$STACK/$1.pid" "$1") || return 1
    [[ $(pid_exe "$pid") == "$(service_bin "$1")" ]] || return 1
    printf '%s' "$pid"
}

service_start() {
    local name=$1 bin log var host port
    bin=$(service_bin "$name")
    log="$LOGS/$name.log"
    var=${SERVICE_ADDR_VAR[$name]}
    port=${!var##*:}
    host=${!var%:*}
    case $host in 0.0.0.0) host=127.0.0.1 ;; '[::]') host=::1 ;; esac
    if tcp_open "$host" "$port"; then
        die "$var=${!var} is already in use by another process (not the one in .stack/$name.pid); stop it or choose another address"
    fi
    printf -- '--- %s starting %s\n' "$(date -Is)" "$bin" >>"$log"
    # NO_COLOR: plain text in the log file.
    spawn "$STACK/$name.pid" "$log" env NO_COLOR=1 NATS_NKEY_FILE="$(nkey_file "$name")" "$bin"
    # Mode 600: DATABASE_URL may carry a password.
    (
        umask 077
        service_settings "$name" >"$STACK/$name.settings"
    )
    note "$name started (pid $(read_pid "$STACK/$name.pid"), log .stack/logs/$name.log)"
}

# service_latest_log NAME: the service's log since its latest start (after the "--- ... starting"
# line).
service_latest_log() {
    awk '/^--- .* starting /{n=0; next} {line[n++]=$0} END{for(i=0;i<n;i++)print line[i]}' \
        "$LOGS/$1.log"
}

# service_failed NAME WHAT: the end of the latest log, then dies with WHAT.
service_failed() {
    printf -- '--- .stack/logs/%s.log (latest start, last 30 lines):\n' "$1" >&2
    service_latest_log "$1" | tail -n 30 >&2
    die "$2"
}

# service_wait_ready NAME: waits until GET /readyz answers 200.
service_wait_ready() {
    local name=$1 url pid answer="" code="" i
    url="$(service_url "$name")/readyz"
    pid=$(read_pid "$STACK/$name.pid")
    for ((i = 0; i < 180; i++)); do
        answer=$(curl -s --max-time 2 -w '\n%{http_code}' "$url") || answer=""
        code=${answer##*$'\n'}
        if [[ $code == 200 ]]; then
            note "ready: GET $url -> 200"
            return 0
        fi
        if ! pid_alive "$pid"; then
            service_failed "$name" "$name (pid $pid) exited during start-up"
        fi
        sleep 0.5
    done
    service_failed "$name" "$name did not become ready within 90 s (GET $url answered ${code:-nothing}: ${answer%$'\n'*})"
}

# step_service NAME: starts the service, or restarts it when its binary was rebuilt or its
# settings changed, or leaves it running; then waits until it is ready.
step_service() {
    local name=$1 pid reason="" var=${SERVICE_ADDR_VAR[$1]}
    say "$name on ${!var}"
    if pid=$(service_pid "$name"); then
        if pid_exe_deleted "$pid" || [[ $(service_bin "$name") -nt $STACK/$name.pid ]]; then
            reason="the binary was rebuilt"
        elif [[ "$(service_settings "$name")" != "$(cat "$STACK/$name.settings" 2>/dev/null)" ]]; then
            reason="its settings changed"
        fi
        if [[ -z $reason ]]; then
            note "$name already running (pid $pid); left as is"
        else
            note "restarting $name (pid $pid): $reason"
            stop_pid "$pid" "$name"
            service_start "$name"
        fi
    else
        service_start "$name"
    fi
    service_wait_ready "$name"
}

# --- 8. seed ------------------------------------------------------------------------------------
step_seed() {
    say "loading $SEED_FILE"
    local out
    out=$(admin seed --file "$SEED_FILE") || die "remediation-admin seed failed"
    note "$out"
}

# --- 9. read model caught up --------------------------------------------------------------------

# Waits until every projection has applied the stream up to its last sequence now, so reads
# through query-api see the seed. Gives up when the projector makes no progress for 60 s.
step_catch_up() {
    local head
    head=$(stream_last_sequence "$(service_url command-api)") ||
        die "cannot read the stream's last sequence from GET $(service_url command-api)/readyz"
    say "waiting for the projector to apply the stream up to sequence $head"
    wait_projections "$(service_url projector)" "$head" || service_failed projector "$CATCH_UP_FAILURE"
}

# --- 10. summary and tokens ---------------------------------------------------------------------
token() {
    admin token "$@" || die "remediation-admin token $* failed"
}

step_summary() {
    local api projector query po dof staff auditor viewer name logs=""
    api=$(service_url command-api)
    projector=$(service_url projector)
    query=$(service_url query-api)
    say "issuing demo tokens"
    po=$(token --role province-office --user vp-ubnd)
    # The Department of Finance reviews reports and, as lead unit of items 6 and 13, also plans
    # and reports its own work as staff of so-tai-chinh: one token with both roles.
    dof=$(token --role department-of-finance --role unit-staff --unit so-tai-chinh --user stc)
    staff=$(token --role unit-staff --unit so-nong-nghiep-va-moi-truong --user snnmt)
    auditor=$(token --role auditor --user auditor)
    viewer=$(token --role viewer --user viewer)
    (
        umask 077
        {
            printf '# Demo bearer tokens written by deploy/up.sh on %s (valid 30 days).\n' "$(date -Is)"
            printf '# Usage: source .stack/tokens.env\n'
            printf 'export COMMAND_API=%s\n' "$api"
            printf 'export PROJECTOR=%s\n' "$projector"
            printf 'export QUERY_API=%s\n' "$query"
            printf 'export TOKEN_PROVINCE_OFFICE=%s\n' "$po"
            printf 'export TOKEN_DEPARTMENT_OF_FINANCE=%s\n' "$dof"
            printf 'export TOKEN_UNIT_STAFF=%s\n' "$staff"
            printf 'export TOKEN_AUDITOR=%s\n' "$auditor"
            printf 'export TOKEN_VIEWER=%s\n' "$viewer"
        } >"$STACK/tokens.env.tmp"
        mv "$STACK/tokens.env.tmp" "$STACK/tokens.env"
    )
    for name in "${SERVICES[@]}"; do
        logs+="${logs:+, }$name.log"
    done
    if [[ -f $NATS_PID ]]; then logs+=", nats-server.log"; fi
    if [[ -f $PG_DATA/PG_VERSION ]]; then logs+=", postgresql.log"; fi
    local db_shown=$DATABASE_URL
    if [[ -n $PG_PASSWORD ]]; then db_shown=${DATABASE_URL/:*@/:***@}; fi
    cat <<EOF

Plan 63 tracker is up.
  command API   $api/v1/commands/<command>
    OpenAPI     $api/openapi.json
    metrics     $api/metrics
    readiness   $api/readyz
  projector     applies the stream to the read model (schemas core and audit)
    metrics     $projector/metrics
    readiness   $projector/readyz   (checkpoint and lag of each projection)
  dashboard     $query/   (Vietnamese web dashboard; sign in with a token below, or open a link)
    as the Department of Finance   $query/#token=$dof
    as the province office         $query/#token=$po
  query API     $query/v1/plans/kh-63-2025/overview (dashboards, compliance, audit trail)
    OpenAPI     $query/openapi.json
    metrics     $query/metrics
    readiness   $query/readyz   (stopped or lagging projections; 503 with the reason)
  NATS          $NATS_URL   (keys: ${CREDENTIALS_DIR#"$ROOT/"}/<service>.nk)
  PostgreSQL    $db_shown
  logs          .stack/logs/ ($logs)
  stop          deploy/down.sh   (deploy/down.sh --purge also deletes .stack/)

Demo bearer tokens, valid 30 days (also in .stack/tokens.env: source .stack/tokens.env):
  province-office (user vp-ubnd)
    TOKEN_PROVINCE_OFFICE=$po
  department-of-finance + unit-staff (unit so-tai-chinh, user stc; its own reports go to the province office)
    TOKEN_DEPARTMENT_OF_FINANCE=$dof
  unit-staff (unit so-nong-nghiep-va-moi-truong, user snnmt)
    TOKEN_UNIT_STAFF=$staff
  auditor (user auditor)
    TOKEN_AUDITOR=$auditor
  viewer (user viewer)
    TOKEN_VIEWER=$viewer

Try:
  source .stack/tokens.env
  curl -s -XPOST $api/v1/commands/set-item-deadline -H "Authorization: Bearer \$TOKEN_PROVINCE_OFFICE" \\
       -d '{"item_id":"kh-63-2025-01","due_on":"2025-12-31"}'
  curl -s -H "Authorization: Bearer \$TOKEN_VIEWER" $query/v1/plans/kh-63-2025/overview
  curl -s $api/v1/me -H "Authorization: Bearer \$TOKEN_DEPARTMENT_OF_FINANCE"   # user, unit, roles, expiry
EOF
}

step_packages
step_build
step_credentials
step_nats
step_postgres
step_secret
step_provision
for service in "${SERVICES[@]}"; do
    step_service "$service"
done
step_seed
step_catch_up
step_summary
