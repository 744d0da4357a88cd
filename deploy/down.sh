#!/usr/bin/env bash
# deploy/down.sh — stop what deploy/up.sh started in this checkout; --purge also deletes .stack/.
#
# Why: up.sh leaves services running in the background; this is its counterpart, and it must
# never stop a server it did not start (the machine's shared NATS and PostgreSQL, or another
# checkout's stack). So it acts only on what up.sh recorded under .stack/, services first, in the
# reverse of their start order, then the private servers they use:
#   - query-api, projector,  .stack/NAME.pid (only if that pid runs a binary of that name)
#     command-api
#   - private nats-server    .stack/nats.pid (only if that pid is a nats-server using .stack/nats)
#   - private PostgreSQL     the cluster in .stack/pg (only up.sh creates it)
# The records, not the environment, say what to stop, so it needs no settings.
#
# Services get SIGTERM (they finish in-flight work — commands, the projector's current batch —
# and flush), then SIGKILL after 15 s.
# PostgreSQL is stopped the way it wants to be: `pg_ctl stop -m fast` (SIGINT: roll back sessions,
# checkpoint) with a 15 s limit, then `-m immediate` — never SIGKILL, which would leave its
# shared memory and children behind.
#
# Data (.stack/nats, .stack/pg, the token secret, logs) is kept, so the next up.sh resumes;
# `deploy/down.sh --purge` deletes .stack/ entirely after stopping everything.
set -Eeuo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

PURGE=""
case ${1:-} in
--purge) PURGE=1 ;;
"") ;;
-h | --help)
    sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*) die "usage: deploy/down.sh [--purge]" ;;
esac
[[ $# -le 1 ]] || die "usage: deploy/down.sh [--purge]"

cd "$ROOT"
if [[ ! -d $STACK ]]; then
    say "nothing to stop: no .stack/ in $ROOT"
    exit 0
fi

exec 9>"$STACK/.lock"
flock -n 9 || die "another deploy/up.sh or deploy/down.sh is running on this checkout"

trap 'printf "error: deploy/down.sh failed at line %s\n" "$LINENO" >&2' ERR

# stop_recorded PIDFILE NAME EXE_NAME [CMDLINE_MARK]: stops the recorded process if it is still
# the one we started, then removes the record.
stop_recorded() {
    local pidfile=$1 name=$2 exe_name=$3 mark=${4:-} pid
    if [[ ! -f $pidfile ]]; then
        note "$name: not started by up.sh (no ${pidfile#"$ROOT/"})"
        return 0
    fi
    if pid=$(recorded_pid "$pidfile" "$exe_name" "$mark"); then
        stop_pid "$pid" "$name"
    else
        note "$name: not running (stale ${pidfile#"$ROOT/"})"
    fi
    rm -f "$pidfile"
}

stop_private_pg() {
    local bindir
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        note "PostgreSQL: no private cluster in .stack/pg (the shared server is left alone)"
        return 0
    fi
    if ! private_pg_running; then
        note "private PostgreSQL: not running"
        return 0
    fi
    bindir=$(pg_bindir)
    say "stopping the private PostgreSQL (.stack/pg)"
    if pg_as_owner "$bindir/pg_ctl" stop -D "$PG_DATA" -m fast -t 15 >/dev/null; then
        note "private PostgreSQL stopped"
    else
        warn "PostgreSQL did not stop within 15 s; using immediate shutdown"
        pg_as_owner "$bindir/pg_ctl" stop -D "$PG_DATA" -m immediate -t 15 >/dev/null ||
            die "could not stop the private PostgreSQL in .stack/pg"
    fi
}

# Reverse start order: query-api reads what the projector writes, the projector follows the
# stream command-api appends to, and all of them use NATS or PostgreSQL.
for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    stop_recorded "$STACK/${SERVICES[i]}.pid" "${SERVICES[i]}" "${SERVICES[i]}"
done
stop_recorded "$STACK/nats.pid" "private nats-server" nats-server "$STACK/nats"
stop_private_pg

if [[ -n $PURGE ]]; then
    say "deleting .stack/ (data, logs, token secret, tokens)"
    rm -rf -- "$STACK"
else
    note "data kept in .stack/ (deploy/down.sh --purge deletes it)"
fi
