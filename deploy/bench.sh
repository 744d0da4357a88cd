#!/usr/bin/env bash
# deploy/bench.sh — the one benchmark command: every throughput next to the raw limit measured in
# the same run, written to docs/benchmarks.md.
#
# Why: numbers measured at different times on a shared 2-core machine cannot be compared; a ratio
# to the raw JetStream publish or PostgreSQL COPY rate of the same run can. One command makes the
# whole table, so docs/benchmarks.md stays current.
#
# What it does, in order:
#   1. builds the release binaries (remediation-admin, command-api, projector, query-api);
#   2. starts a private nats-server with JetStream on a free loopback port, its store in a
#      temporary directory (no authentication: the services then connect anonymously), and
#      creates two scratch PostgreSQL databases (the stack's read model, and the projector's
#      benchmarks); all of it is stopped and dropped on exit, also on failure;
#   3. starts command-api, provisions the stream and loads the Plan 63 seed, then measures —
#      before the projector runs, so that it does not compete for the cores:
#        a. HTTP commands vs raw JetStream publish, 32 and 128 clients on their own items
#           (remediation-admin bench);
#        c. one hot item: 32 clients on the same item — accepted/s, conflicts, and the check that
#           the stream holds exactly the accepted commits (remediation-admin bench --hot-item);
#           then 32 clients with 10 % of their commands on one shared item (--hot-share 10):
#           throughput, the service's conflicts and retries, and the same check on that item;
#   4. starts the projector and times its catch-up on everything written so far, then starts
#      query-api and measures
#        b. command latency at a fixed rate (1 000 commands/s) and read-your-writes staleness:
#           for 1 command in 50, from its answer until the query API answers with min_sequence =
#           the answer's stream_sequence (remediation-admin bench --rate); then the same at
#           5 000 commands/s;
#        a again, 32 clients, with the whole stack running (the projector applying each commit
#           as it lands, query-api up), then waits until the projector has applied everything;
#   5. d. projector bench (catch-up, each projection alone and both at once, vs raw COPY of the
#         audit rows and of all rows, on a scratch stream and schemas) and
#         the as-of benchmark (cargo bench -p stack-tests --bench as-of: as-of latency);
#      e. projector rebuild all on the loaded read model, vs the COPY rate of step d (full mode);
#   6. writes docs/benchmarks.md: date, machine, git commit, a table per measurement with the raw
#      limit and the ratio, the exact commands; keeps the run's logs in target/bench-logs/.
#
# Usage: deploy/bench.sh [--quick]
#   --quick   3-second phases and smaller histories, no rebuild: to try the script (its
#             docs/benchmarks.md says so).
# Settings (environment): BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres: the
# server where the scratch databases are made), BENCH_RATE (1000), BENCH_HIGH_RATE (5000),
# BENCH_SCALE_EVENTS ("250000 1000000": the rebuild-at-scale sizes), BENCH_REPLAY_EVENTS
# (1000000: the as-of history; generating it takes about 6 minutes), BENCH_OUT (docs/benchmarks.md).
set -Eeuo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

QUICK=""
case ${1:-} in
-h | --help)
    sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
--quick) QUICK=1 ;;
"") ;;
*) die "usage: deploy/bench.sh [--quick]" ;;
esac
(($# <= 1)) || die "usage: deploy/bench.sh [--quick]"

cd "$ROOT"
OUT=${BENCH_OUT:-docs/benchmarks.md}
RATE=${BENCH_RATE:-1000}
[[ $RATE =~ ^[1-9][0-9]*$ ]] || die "BENCH_RATE must be a positive number (got $RATE)"
HIGH_RATE=${BENCH_HIGH_RATE:-5000}
[[ $HIGH_RATE =~ ^[1-9][0-9]*$ ]] || die "BENCH_HIGH_RATE must be a positive number (got $HIGH_RATE)"
if [[ -n $QUICK ]]; then
    PHASE_SECS=3 PROJECTOR_EVENTS=10000 REPLAY_EVENTS=20000 SCALE_EVENTS=""
else
    PHASE_SECS=10 PROJECTOR_EVENTS=50000 REPLAY_EVENTS=${BENCH_REPLAY_EVENTS:-1000000} SCALE_EVENTS=${BENCH_SCALE_EVENTS:-250000 1000000}
fi
[[ $REPLAY_EVENTS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPLAY_EVENTS must be a positive number (got $REPLAY_EVENTS)"
BIN="$ROOT/target/release"
SEED_FILE="deploy/seed/ke-hoach-63.json"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kh63-bench.XXXXXX")
RUN_ID="$(date -u +%Y%m%d%H%M%S)_$$"
DB_STACK="kh63_bench_${RUN_ID}"
DB_SCRATCH="kh63_bench_${RUN_ID}_scratch"
DBS_MADE=()
PIDS=()
LOGS_KEPT="$ROOT/target/bench-logs"

# Stops what this run started, newest first, drops its databases and removes its files, keeping
# the logs in $LOGS_KEPT.
cleanup() {
    local status=$? i
    trap - EXIT
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]%%:*}" "${PIDS[i]#*:}" >&2 || true
    done
    for db in "${DBS_MADE[@]}"; do
        psql_maint -v db="$db" <<<'DROP DATABASE IF EXISTS :"db" WITH (FORCE);' >/dev/null ||
            warn "could not drop the scratch database $db"
    done
    if ((status != 0)); then
        warn "deploy/bench.sh failed; the logs of this run:"
        for log in "$WORK"/*.log; do
            [[ -f $log ]] || continue
            printf -- '--- %s (last 20 lines)\n' "$(basename "$log")" >&2
            tail -n 20 "$log" >&2
        done
    fi
    # Kept, so that an odd figure can still be traced to what the services logged.
    rm -rf "$LOGS_KEPT"
    if mkdir -p "$LOGS_KEPT" && cp "$WORK"/*.log "$LOGS_KEPT"/ 2>/dev/null; then
        note "the logs of this run are in ${LOGS_KEPT#"$ROOT"/}/"
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'printf "error: deploy/bench.sh failed at line %s\n" "$LINENO" >&2' ERR

# free_port VAR: sets VAR to a loopback TCP port nothing listens on and this run has not handed
# out yet (checked, then given to the server that binds it).
USED_PORTS=" "
free_port() {
    local candidate i
    for ((i = 0; i < 100; i++)); do
        candidate=$((20000 + RANDOM % 40000))
        [[ $USED_PORTS != *" $candidate "* ]] || continue
        if ! tcp_open 127.0.0.1 "$candidate"; then
            USED_PORTS+="$candidate "
            printf -v "$1" '%s' "$candidate"
            return 0
        fi
    done
    die "found no free loopback port"
}

# start NAME COMMAND...: starts COMMAND in the background (log $WORK/NAME.log) and records it
# for cleanup; sets STARTED_PID.
start() {
    local name=$1
    shift
    spawn "$WORK/$name.pid" "$WORK/$name.log" "$@"
    STARTED_PID=$(read_pid "$WORK/$name.pid")
    PIDS+=("$STARTED_PID:$name")
}

# wait_ready NAME URL PID: waits until URL answers 200 (90 s at most).
wait_ready() {
    local name=$1 url=$2 pid=$3 i
    for ((i = 0; i < 180; i++)); do
        if [[ $(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url") == 200 ]]; then
            return 0
        fi
        pid_alive "$pid" || die "$name exited during start-up (log: $(tail -n 5 "$WORK/$name.log"))"
        sleep 0.5
    done
    die "$name did not become ready within 90 s ($url)"
}

admin() {
    RUST_LOG=warn NO_COLOR=1 "$BIN/remediation-admin" "$@"
}

# bench_json NAME ARGS...: runs remediation-admin bench ARGS --json, keeps its JSON in
# $WORK/NAME.json and the command line in CMD_NAME.
declare -A CMD
bench_json() {
    local name=$1
    shift
    CMD[$name]="remediation-admin bench $*"
    # The private services' ports change every run: shown as the variables they come from.
    # shellcheck disable=SC2016 # literally $COMMAND_API and $QUERY_API
    CMD[$name]=${CMD[$name]//"$COMMAND_API"/'$COMMAND_API'}
    # shellcheck disable=SC2016
    CMD[$name]=${CMD[$name]//"$QUERY_API"/'$QUERY_API'}
    say "${CMD[$name]}"
    admin bench "$@" --json >"$WORK/$name.out" 2>>"$WORK/admin.log" ||
        die "remediation-admin bench $* failed (see the log above)"
    grep '^{' "$WORK/$name.out" | tail -n 1 >"$WORK/$name.json"
    [[ -s $WORK/$name.json ]] || die "remediation-admin bench $* printed no result"
}

# j NAME FILTER: a value from $WORK/NAME.json.
j() {
    jq -r "$2" "$WORK/$1.json"
}

# A number rounded, thousands grouped with a space as the README writes them (34 252).
num() {
    LC_ALL=C printf '%.0f' "$1" | sed -E ':a; s/([0-9])([0-9]{3})($|[^0-9])/\1 \2\3/; ta'
}

# --- machine, build -----------------------------------------------------------------------------
ensure_packages nats postgresql curl jq c-build
command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain and re-run"
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
MACHINE="$(nproc) cores ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || printf 'unknown')
# The previous report does not count as a change: it is what this run replaces.
if [[ -n $(git status --porcelain -- . ":(exclude)$OUT" 2>/dev/null) ]]; then
    COMMIT+=" (with uncommitted changes)"
fi

say "building release binaries"
cargo build --release -p remediation-admin -p command-api -p projector -p query-api >&2 ||
    die "cargo build failed"
cargo bench --no-run -p stack-tests --bench as-of >&2 || die "cargo bench --no-run failed"
LOAD_AFTER_BUILD=$(cut -d' ' -f1-3 /proc/loadavg)

# --- private NATS and scratch databases ---------------------------------------------------------
NATS_PORT=""
free_port NATS_PORT
export NATS_URL="nats://127.0.0.1:$NATS_PORT"
unset NATS_NKEY_FILE
say "private nats-server on $NATS_URL (store $WORK/nats)"
start nats-server nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats"
for ((i = 0; i < 100; i++)); do
    nats_info 127.0.0.1 "$NATS_PORT" >/dev/null && break
    pid_alive "$STARTED_PID" || die "nats-server exited during start-up"
    sleep 0.1
done
nats_info 127.0.0.1 "$NATS_PORT" >/dev/null || die "nats-server did not answer within 10 s"

parse_database_url "${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_answers "$PG_HOST" "$PG_PORT" || die "no PostgreSQL answers at $PG_HOST:$PG_PORT"
SERVER_DB=$PG_DB
for PG_DB in "$DB_STACK" "$DB_SCRATCH"; do
    DBS_MADE+=("$PG_DB")
    say "scratch database $PG_DB"
    ensure_database
done
PG_DB=$SERVER_DB
db_url() {
    local auth=$PG_USER
    if [[ -n $PG_PASSWORD ]]; then auth+=":$PG_PASSWORD"; fi
    printf 'postgres://%s@%s:%s/%s' "$auth" "$PG_HOST" "$PG_PORT" "$1"
}
export DATABASE_URL
DATABASE_URL=$(db_url "$DB_STACK")
TOKEN_SECRET=$(head -c 48 /dev/urandom | base64 -w0)
export TOKEN_SECRET
port=""
free_port port
export COMMAND_API_ADDR="127.0.0.1:$port"
free_port port
export PROJECTOR_ADDR="127.0.0.1:$port"
free_port port
export QUERY_API_ADDR="127.0.0.1:$port"
COMMAND_API="http://$COMMAND_API_ADDR"
QUERY_API="http://$QUERY_API_ADDR"

# --- command side: a and c, the projector not yet running ----------------------------------------
say "provisioning the stream; starting command-api on $COMMAND_API_ADDR"
admin provision >/dev/null
start command-api env NO_COLOR=1 "$BIN/command-api"
wait_ready command-api "$COMMAND_API/readyz" "$STARTED_PID"
admin seed --file "$SEED_FILE" >/dev/null 2>>"$WORK/admin.log" || die "loading the seed failed"

bench_json http32 --url "$COMMAND_API" --clients 32 --seconds "$PHASE_SECS"
bench_json http128 --url "$COMMAND_API" --clients 128 --seconds "$PHASE_SECS"
bench_json hot --url "$COMMAND_API" --clients 32 --seconds "$PHASE_SECS" --hot-item
bench_json hot10 --url "$COMMAND_API" --clients 32 --seconds "$PHASE_SECS" --hot-share 10

# stream_head: the stream's last sequence, as command-api reports it.
stream_head() {
    stream_last_sequence "$COMMAND_API" || die "cannot read the stream's last sequence from command-api"
}

# wait_caught_up HEAD: waits until both of the projector's projections have applied HEAD.
wait_caught_up() {
    wait_projections "http://$PROJECTOR_ADDR" "$1" "$PROJECTOR_PID" || die "$CATCH_UP_FAILURE"
}

# --- read side: catch-up, then b --------------------------------------------------------------------
HEAD=$(stream_head)
say "starting the projector on $PROJECTOR_ADDR; catching up on $HEAD commits"
CATCH_UP_START=$(date +%s.%N)
start projector env NO_COLOR=1 "$BIN/projector"
PROJECTOR_PID=$STARTED_PID
wait_caught_up "$HEAD"
CATCH_UP_SECS=$(awk -v s="$CATCH_UP_START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
note "caught up on $HEAD commits in ${CATCH_UP_SECS}s"

say "starting query-api on $QUERY_API_ADDR"
start query-api env NO_COLOR=1 "$BIN/query-api"
wait_ready query-api "$QUERY_API/readyz" "$STARTED_PID"

bench_json rate --url "$COMMAND_API" --query-url "$QUERY_API" --rate "$RATE" --seconds "$PHASE_SECS"
bench_json high_rate --url "$COMMAND_API" --query-url "$QUERY_API" --rate "$HIGH_RATE" --seconds "$PHASE_SECS"
# a again as the issue measures it: the whole stack running, the projector applying each commit as
# it lands and query-api up (the raw side publishes to a scratch stream that nothing reads). Then
# the projector is let catch up, so that what it still owes does not weigh on the phases after.
bench_json http32_stack --url "$COMMAND_API" --clients 32 --seconds "$PHASE_SECS"
STACK_HEAD=$(stream_head)
say "waiting for the projector to apply the $STACK_HEAD commits written so far"
wait_caught_up "$STACK_HEAD"

# --- d. projector benchmarks on the scratch database ----------------------------------------------
# Warnings, and each time the stream reader replaces its consumer (a lost delivery, missed
# heartbeats): what a catch-up that stands still would show.
PROJECTOR_BENCH_LOG="warn,event_store::reader=debug"
CMD[projector]="projector bench $PROJECTOR_EVENTS"
say "${CMD[projector]}"
DATABASE_URL=$(db_url "$DB_SCRATCH") RUST_LOG="$PROJECTOR_BENCH_LOG" "$BIN/projector" bench "$PROJECTOR_EVENTS" \
    >"$WORK/projector-bench.out" 2>>"$WORK/projector-bench.log" || die "projector bench failed"
cat "$WORK/projector-bench.out" >&2
COPY_RATE=$(sed -n 's/^raw COPY of the resulting \([0-9]*\) rows: *\([0-9]*\) rows\/s.*/\2/p' "$WORK/projector-bench.out")
COPY_ROWS=$(sed -n 's/^raw COPY of the resulting \([0-9]*\) rows:.*/\1/p' "$WORK/projector-bench.out")
CATCH_RATE=$(sed -n 's/^read model catch-up (both projections): *\([0-9]*\) events\/s.*/\1/p' "$WORK/projector-bench.out")
PARALLEL_RATE=$(sed -n 's/^both projections in parallel: *\([0-9]*\) events\/s.*/\1/p' "$WORK/projector-bench.out")
AUDIT_COPY_RATE=$(sed -n "s/^raw COPY of the audit table's \([0-9]*\) rows: *\([0-9]*\) rows\/s.*/\2/p" "$WORK/projector-bench.out")
CORE_RATE=$(sed -n 's/^ *core *catch-up: *\([0-9]*\) events\/s.*/\1/p' "$WORK/projector-bench.out")
AUDIT_RATE=$(sed -n 's/^ *audit *catch-up: *\([0-9]*\) events\/s.*/\1/p' "$WORK/projector-bench.out")
[[ -n $COPY_RATE && -n $CATCH_RATE && -n $CORE_RATE && -n $AUDIT_RATE && -n $PARALLEL_RATE && -n $AUDIT_COPY_RATE ]] ||
    die "cannot read the projector bench's results"

CMD[replay]="cargo bench -p stack-tests --bench as-of -- --events $REPLAY_EVENTS"
say "${CMD[replay]}"
DATABASE_URL=$(db_url "$DB_SCRATCH") RUST_LOG=warn cargo bench -q -p stack-tests --bench as-of -- --events "$REPLAY_EVENTS" \
    >"$WORK/replay.out" 2>>"$WORK/replay.log" || die "the as-of benchmark failed"
cat "$WORK/replay.out" >&2
REPLAY_STORED=$(sed -n 's/^snapshots every .*; \(.*\) MB stored$/\1 MB stored/p' "$WORK/replay.out")
REPLAY_DECODE=$(sed -n 's/^ *decoding one of the latest snapshots takes \(.*\)$/\1/p' "$WORK/replay.out")
REPLAY_ROWS=$(sed -nE 's/^ +(.*[^ ]) +(recorded|effective) +p50 +([0-9.]+) ms +p99 +([0-9.]+) ms +max +([0-9.]+) ms.*/| \1 | \2 | \3 ms | \4 ms | \5 ms |/p' "$WORK/replay.out")
[[ -n $REPLAY_ROWS ]] || die "cannot read the replay bench's results"

# --- e. rebuild of the loaded read model ------------------------------------------------------------
REBUILD=""
if [[ -z $QUICK ]]; then
    CMD[rebuild]="projector rebuild all"
    REBUILD_HEAD=$(stream_head)
    say "${CMD[rebuild]} ($REBUILD_HEAD commits, the live projector running)"
    RUST_LOG=warn "$BIN/projector" rebuild all 2>"$WORK/rebuild.out" >&2 || die "projector rebuild all failed"
    tr '\r' '\n' <"$WORK/rebuild.out" | grep 'rebuilt up to' >&2 || true
    REBUILD=$(tr '\r' '\n' <"$WORK/rebuild.out" |
        sed -n 's/^\([a-z]*\): rebuilt up to stream sequence \([0-9]*\) in \([0-9.]*\)s.*/\1 \2 \3/p')
    [[ $(wc -l <<<"$REBUILD") == 2 ]] || die "cannot read the rebuild's results"
fi

# --- f. rebuild at scale, on scratch streams: how long, and linear in the number of events? ------
SCALE_ROWS=""
if [[ -z $QUICK ]]; then
    for n in $SCALE_EVENTS; do
        CMD[scale]="projector bench N --rebuild"
        say "projector bench $n --rebuild"
        DATABASE_URL=$(db_url "$DB_SCRATCH") RUST_LOG="$PROJECTOR_BENCH_LOG" "$BIN/projector" bench "$n" --rebuild \
            >"$WORK/scale-$n.out" 2>>"$WORK/scale.log" || die "projector bench $n --rebuild failed"
        cat "$WORK/scale-$n.out" >&2
        line=$(sed -n 's/^rebuild of both projections at once: *\([0-9]*\) events\/s (\([0-9.]*\)s; core \([0-9.]*\)s, audit \([0-9.]*\)s).*/\1 \2 \3 \4/p' "$WORK/scale-$n.out")
        copy=$(sed -n "s/^raw COPY of the audit table's [0-9]* rows: *\([0-9]*\) rows\/s.*/\1/p" "$WORK/scale-$n.out")
        peak=$(sed -n 's/^  resident peak through the rebuild: \([0-9]*\) MB$/\1/p' "$WORK/scale-$n.out")
        [[ -n $line && -n $copy && -n $peak ]] || die "cannot read the results of projector bench $n --rebuild"
        read -r rate secs core_s audit_s <<<"$line"
        SCALE_ROWS+="| $(num "$n") | ${secs} s (core ${core_s} s, audit ${audit_s} s) | $(num "$rate") events/s | $(awk -v s="$secs" -v n="$n" 'BEGIN { printf "%.1f", s * 1e6 / n }') s | $(num "$copy") rows/s | **$(awk -v a="$rate" -v b="$copy" 'BEGIN { printf "%.2f", a / b }')** | ${peak} MB |"$'\n'
    done
fi

# The services' memory after everything above (resident set and its peak, from /proc).
RSS_ROWS=""
for entry in "${PIDS[@]}"; do
    pid=${entry%%:*} name=${entry#*:}
    [[ $name == nats-server ]] && continue
    rss=$(awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null) || continue
    hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null) || continue
    RSS_ROWS+="| $name | $rss MB | $hwm MB |"$'\n'
done
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- docs/benchmarks.md ---------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
two() { LC_ALL=C printf '%.2f' "$1"; }

throughput_row() {
    local name=$1 label=${2:-}
    printf '| %s%s | %s | %s | %s | %s | **%s** |\n' "$(j "$name" .clients)" "$label" \
        "$(num "$(j "$name" .http.per_second)")/s" \
        "$(j "$name" '"\(.http.latency.p50_ms) / \(.http.latency.p99_ms) ms"')" \
        "$(num "$(j "$name" .raw.per_second)")/s" \
        "$(j "$name" '"\(.raw.latency.p50_ms) / \(.raw.latency.p99_ms) ms"')" \
        "$(two "$(j "$name" .ratio)")"
}

say "writing $OUT"
{
    printf '# Benchmarks\n\n'
    # shellcheck disable=SC2016 # Markdown backticks
    printf 'Generated by `deploy/bench.sh%s` — do not edit by hand; run it again instead.\n' "${QUICK:+ --quick}"
    if [[ -n $QUICK ]]; then
        printf '\n**Quick mode** (3-second phases, small histories, no rebuild): for trying the script, not for quoting.\n'
    fi
    cat <<EOF

Every throughput is given as a ratio to the raw limit measured in the same run on the same
machine — JetStream publish of the same payloads (same shape: as many publishers, each waiting for
its acknowledgement, with the expected-sequence header), or PostgreSQL \`COPY\` of the rows the
projections produce — because absolute numbers on a shared machine move with whatever else runs.

- Date: $STARTED_AT
- Machine: $MACHINE; load average (1/5/15 min) $LOAD_AT_START at start, $LOAD_AFTER_BUILD after the build, $LOAD_AT_END at the end
- Commit: \`$COMMIT\`
- Stack: release builds; a private nats-server (JetStream, file storage, no authentication), PostgreSQL $(psql_maint <<<'SHOW server_version;' | cut -d' ' -f1) (scratch databases), command-api, projector and query-api as \`deploy/up.sh\` configures them (default settings; \`\$COMMAND_API\` and \`\$QUERY_API\` in the commands below are their loopback URLs)

## Commands through HTTP vs raw JetStream publish

Closed loop: each client on its own item sends \`set-item-deadline\` (which always changes the item),
waits for the answer, sends the next; ${PHASE_SECS} s per side, in $(j http32 .rounds) slices alternating
between HTTP and raw, so that load coming and going on the machine weighs on both sides alike.
Latencies are p50 / p99. The first two rows are measured before the projector starts, so that it
does not compete for the cores; the last is the issue's measurement, the same 32 clients after the
rate phases with the whole stack running as a deployment runs it: the projector applying each
commit as it lands (both projections, PostgreSQL) and query-api up. The raw side always publishes
to a scratch stream that nothing reads.

| Clients | HTTP commands | latency | raw JetStream publish | latency | ratio |
|---|---|---|---|---|---|
$(throughput_row http32)
$(throughput_row http128)
$(throughput_row http32_stack ", whole stack running")

Payload: $(j http32 .payload_bytes) bytes per commit.
Command: \`${CMD[http32]}\`, \`${CMD[http128]}\` (the last row: the first command again).

## One hot item: conflicts and exactly-once

$(j hot .clients) clients on the same item, each sending \`set-item-deadline\` with a date no other
command of the run uses. Within the one command-api instance, commands on the item take turns
(each decides on the state the one before it left); a conflict with any other writer is decided
again (up to \`MAX_ATTEMPTS\`, 5) and answers 409 once it gives up. Afterwards every commit stored on the item's subject since the run
started is read back: each accepted command's events are stored once, in one commit, and nothing
else is (the command fails otherwise). The raw side: as many publishers racing on one subject, each
with the last sequence it knows as the expected one; the sides alternate in $(j hot .rounds) slices.

| | accepted/s | accepted | conflicts (409 / wrong last sequence) | failed | latency p50 / p99 |
|---|---|---|---|---|---|
| HTTP commands | $(num "$(j hot .http.per_second)") | $(num "$(j hot .http.accepted)") | $(num "$(j hot .http.conflicts)") | $(j hot .http.failed) | $(j hot '"\(.http.latency.p50_ms) / \(.http.latency.p99_ms) ms"') |
| raw JetStream publish | $(num "$(j hot .raw.per_second)") | $(num "$(j hot .raw.accepted)") | $(num "$(j hot .raw.conflicts)") | $(j hot .raw.failed) | $(j hot '"\(.raw.latency.p50_ms) / \(.raw.latency.p99_ms) ms"') |

Ratio of accepted/s: **$(two "$(j hot .ratio)")**. Exactly once: $(num "$(j hot .http.accepted)") accepted answers,
$(num "$(j hot .stored_commits)") commits stored for the item — $(j hot 'if .exactly_once then "equal, command ids matching one to one" else "MISMATCH" end').
The service's own counters over the HTTP side: $(num "$(j hot .service.append_conflicts)") append
conflicts, $(num "$(j hot .service.retries)") decisions made again.
Command: \`${CMD[hot]}\`.

### 10 % of the commands on one hot item

$(j hot10 .clients) closed-loop clients as in the first table, but one command in ten (spread
evenly, not in runs) goes to one item all of them share, with a date no other command uses; the raw
side does the same on its subjects (racing on the shared one with the last sequence it knows).
The shared item's commits are checked as above.

| | commands/s | accepted | conflicts (409 / wrong last sequence) | failed | latency p50 / p99 |
|---|---|---|---|---|---|
| HTTP commands | $(num "$(j hot10 .http.per_second)") | $(num "$(j hot10 .http.accepted)") | $(num "$(j hot10 .http.conflicts)") | $(j hot10 .http.failed) | $(j hot10 '"\(.http.latency.p50_ms) / \(.http.latency.p99_ms) ms"') |
| raw JetStream publish | $(num "$(j hot10 .raw.per_second)") | $(num "$(j hot10 .raw.accepted)") | $(num "$(j hot10 .raw.conflicts)") | $(j hot10 .raw.failed) | $(j hot10 '"\(.raw.latency.p50_ms) / \(.raw.latency.p99_ms) ms"') |

Ratio: **$(two "$(j hot10 .ratio)")**. The service: $(num "$(j hot10 .service.append_conflicts)") append
conflicts, $(num "$(j hot10 .service.retries)") decisions made again. On the shared item:
$(num "$(j hot10 .hot.accepted)") accepted answers, $(num "$(j hot10 .hot.stored_commits)") commits stored —
$(j hot10 'if .hot.exactly_once then "equal, command ids matching one to one: none lost, none twice" else "MISMATCH" end').
Command: \`${CMD[hot10]}\`.

## Command latency and read-your-writes staleness at a fixed rate

Open loop: $(num "$(j rate .rate)") commands/s for $(j rate .seconds) s (in $(j rate .rounds) slices alternating with
raw publishes at the same rate), round-robin over $(j rate .items) items, each sent when it is due
whatever the answers before it; latency counts from the due time (so a stall
cannot hide the commands queued behind it). The projector and query-api run. For 1 command in
$(j rate .sample_every), the item is read through the query API with \`min_sequence\` = the answer's
\`stream_sequence\` (\`wait_ms=10000\`): staleness is the time from the command's answer to the
query's answer. The query service looks at the checkpoints again whenever a projection announces
a commit (\`NOTIFY\`), polling every 5 → 50 ms besides, and the staleness includes one read of
the item, whose own cost is shown below it.

| | answered | p50 | p99 | max |
|---|---|---|---|---|
| HTTP command latency | $(num "$(j rate .http.accepted)") of $(num "$(j rate '.http.accepted + .http.conflicts + .http.failed')") | $(j rate .http.latency.p50_ms) ms | $(j rate .http.latency.p99_ms) ms | $(j rate .http.latency.max_ms) ms |
| raw JetStream publish latency, same rate | $(num "$(j rate .raw.accepted)") of $(num "$(j rate '.raw.accepted + .raw.conflicts + .raw.failed')") | $(j rate .raw.latency.p50_ms) ms | $(j rate .raw.latency.p99_ms) ms | $(j rate .raw.latency.max_ms) ms |
| staleness (answer → visible in query-api) | $(j rate .staleness.samples) ($(j rate .staleness_failed) not within 10 s) | $(j rate .staleness.p50_ms) ms | $(j rate .staleness.p99_ms) ms | $(j rate .staleness.max_ms) ms |
| the same item read, no waiting | $(j rate .plain_read.samples) | $(j rate .plain_read.p50_ms) ms | $(j rate .plain_read.p99_ms) ms | $(j rate .plain_read.max_ms) ms |

The same at $(num "$(j high_rate .rate)") commands/s (the target there: staleness p99 ≤ 250 ms):

| | answered | p50 | p99 | max |
|---|---|---|---|---|
| HTTP command latency | $(num "$(j high_rate .http.accepted)") of $(num "$(j high_rate '.http.accepted + .http.conflicts + .http.failed')") | $(j high_rate .http.latency.p50_ms) ms | $(j high_rate .http.latency.p99_ms) ms | $(j high_rate .http.latency.max_ms) ms |
| raw JetStream publish latency, same rate | $(num "$(j high_rate .raw.accepted)") of $(num "$(j high_rate '.raw.accepted + .raw.conflicts + .raw.failed')") | $(j high_rate .raw.latency.p50_ms) ms | $(j high_rate .raw.latency.p99_ms) ms | $(j high_rate .raw.latency.max_ms) ms |
| staleness (answer → visible in query-api) | $(j high_rate .staleness.samples) ($(j high_rate .staleness_failed) not within 10 s) | $(j high_rate .staleness.p50_ms) ms | $(j high_rate .staleness.p99_ms) ms | $(j high_rate .staleness.max_ms) ms |

Of the HTTP commands, $(num "$(j high_rate .http.conflicts)") were refused for a concurrent change (409) and
$(num "$(j high_rate .http.failed)") failed or were refused for overload (503 \`overloaded\`: the service decides
\`MAX_IN_FLIGHT\`, 256, at once and turns the rest away at once rather than queue them).
Command: \`${CMD[high_rate]}\`.

Latency ratio HTTP / raw at $(num "$(j rate .rate)")/s: p50 **$(two "$(j rate .latency_ratio_p50)")**, p99 **$(two "$(j rate .latency_ratio_p99)")**. The sender fell at
worst $(j rate '.http_sender_behind_ms * 10 | round / 10') ms behind its schedule (raw: $(j rate '.raw_sender_behind_ms * 10 | round / 10') ms).
Command: \`${CMD[rate]}\`.

## Read model: catch-up and rebuild vs raw COPY

\`projector bench\` publishes $(num "$PROJECTOR_EVENTS") one-event commits (20 per item) to a scratch
stream and applies them to scratch schemas: one projection after the other (what each costs
on its own; "one after the other" is events over the sum of both times), then both at once as the
projector runs them (a worker each; events over the wall time), in three rounds. After each round it
times \`COPY … FROM STDIN\` of the very rows the catch-up produced into empty twins with the same
indexes: the audit table's rows alone (one row per event: the limit the issue names) and all
$(num "$COPY_ROWS") rows of the filled tables. The table shows the round whose ratio is the median
(each round takes a few seconds, and one round's ratio moved by a fifth from run to run); every
round is in the full output below.

| | rate | raw COPY of the audit rows | ratio | raw COPY of all rows | ratio |
|---|---|---|---|---|---|
| catch-up, core | $(num "$CORE_RATE") events/s | | | | |
| catch-up, audit | $(num "$AUDIT_RATE") events/s | $(num "$AUDIT_COPY_RATE") rows/s | $(ratio "$AUDIT_RATE" "$AUDIT_COPY_RATE") | | |
| catch-up, both projections one after the other | $(num "$CATCH_RATE") events/s | $(num "$AUDIT_COPY_RATE") rows/s | $(ratio "$CATCH_RATE" "$AUDIT_COPY_RATE") | $(num "$COPY_RATE") rows/s | $(ratio "$CATCH_RATE" "$COPY_RATE") |
| catch-up, both projections at once | $(num "$PARALLEL_RATE") events/s | $(num "$AUDIT_COPY_RATE") rows/s | **$(ratio "$PARALLEL_RATE" "$AUDIT_COPY_RATE")** | $(num "$COPY_RATE") rows/s | $(ratio "$PARALLEL_RATE" "$COPY_RATE") |
| live projector start, $(num "$HEAD") commits written by the phases above (both at once) | $(num "$(awk -v n="$HEAD" -v s="$CATCH_UP_SECS" 'BEGIN { print n / s }')") commits/s (${CATCH_UP_SECS} s) | $(num "$AUDIT_COPY_RATE") rows/s | **$(ratio "$(awk -v n="$HEAD" -v s="$CATCH_UP_SECS" 'BEGIN { print n / s }')" "$AUDIT_COPY_RATE")** | $(num "$COPY_RATE") rows/s | $(ratio "$(awk -v n="$HEAD" -v s="$CATCH_UP_SECS" 'BEGIN { print n / s }')" "$COPY_RATE") |
EOF
    if [[ -n $REBUILD ]]; then
        rb_core=$(awk '$1 == "core" { print $3 }' <<<"$REBUILD")
        rb_audit=$(awk '$1 == "audit" { print $3 }' <<<"$REBUILD")
        rb_head=$(awk '$1 == "core" { print $2 }' <<<"$REBUILD")
        # The projections rebuild at once: the rebuild takes as long as the slower one.
        both=$(awk -v n="$rb_head" -v a="$rb_core" -v b="$rb_audit" 'BEGIN { print n / (a > b ? a : b) }')
        # shellcheck disable=SC2016 # Markdown backticks
        printf '| `projector rebuild all`, %s commits (both at once: core %s s, audit %s s) | %s commits/s | %s rows/s | **%s** | %s rows/s | %s |\n' \
            "$(num "$rb_head")" "$rb_core" "$rb_audit" "$(num "$both")" "$(num "$AUDIT_COPY_RATE")" "$(ratio "$both" "$AUDIT_COPY_RATE")" \
            "$(num "$COPY_RATE")" "$(ratio "$both" "$COPY_RATE")"
    fi
    cat <<EOF

The live start and the rebuild apply the stack's own history (mostly \`set-item-deadline\` commits
of the phases above); their ratio uses the COPY rate of the same run. Commands: \`${CMD[projector]}\`${REBUILD:+, \`${CMD[rebuild]:-}\` (on the stack database, the live projector running)}.

EOF
    if [[ -n $SCALE_ROWS ]]; then
        cat <<EOF

### Rebuild at scale

\`projector bench N --rebuild\` publishes N one-event commits to a scratch stream and times what
\`projector rebuild all\` does over it: both projections at once, each into a fresh schema with its
secondary indexes built after the load, then swapped in. The COPY limit is the audit table's rows
of the same run with their indexes. Seconds per million events show whether the rebuild grows
linearly (the target: ≤ 60 s for 1 000 000 events). The resident peak is the benchmark process's
(VmHWM) when the rebuild ends, before it reads the tables back for the COPY: what
\`projector rebuild all\` holds, at the default \`REBUILD_BATCH_SIZE\`.

| events | rebuild (wall) | rate | per 1 000 000 events | raw COPY of the audit rows | ratio | resident peak |
|---|---|---|---|---|---|---|
${SCALE_ROWS}
Command: \`${CMD[scale]}\` for N in ${SCALE_EVENTS// /, }.
EOF
    fi
    cat <<EOF

## Memory of the services

Resident set of each service at the end of the run, after every phase above (the stack's projector
has applied every commit written to it, $(num "$HEAD") before its start and those of the phases after it),
and its peak (VmHWM). The target: under 100 MB.

| service | resident | peak |
|---|---|---|
${RSS_ROWS}
## As-of queries (time travel)

The as-of benchmark (\`tests/benches/as_of.rs\`) generates a plan history of $(num "$REPLAY_EVENTS") events in a scratch
schema and queries the whole plan as of random instants. Latency only: there is no raw limit to
compare with. The target: p99 ≤ 100 ms on both axes at 1 000 000 events. Snapshots (one every
5 000 events per axis, zstd-compressed JSON in frames decoded in parallel): ${REPLAY_STORED:-?};
decoding one of the latest takes ${REPLAY_DECODE:-?}.

| variant | axis | p50 | p99 | max |
|---|---|---|---|---|
$REPLAY_ROWS

Command: \`${CMD[replay]}\`.

<details><summary>Full output of the projector benchmarks</summary>

\`\`\`text
$(cat "$WORK/projector-bench.out")
$(cat "$WORK/replay.out")
\`\`\`

</details>
EOF
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
note "$(grep -c '' "$OUT") lines written to $OUT"
say "done"
