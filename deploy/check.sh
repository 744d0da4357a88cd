#!/usr/bin/env bash
# deploy/check.sh — validates the deployment files with well-kept tools; exits non-zero if any
# check fails. deploy/test.sh runs it as a test step.
#
# Why: compose file, Kubernetes manifests, alert rules and dashboard are never started here (no
# container runtime, no cluster on the CI machine), so they are checked instead:
#   - yamllint (syntax, duplicate keys, indentation) on every YAML file under deploy/;
#   - kubernetes-validate: deploy/k8s/*.yaml against the Kubernetes API schemas;
#   - podman-compose config: deploy/compose/compose.yaml resolved (only where podman is
#     installed; otherwise said so and skipped);
#   - promtool check rules: the alert rules, and every dashboard query as a recording rule, so
#     a typo in a panel's PromQL fails too (promtool from Debian's prometheus package).
# The Python tools live in target/deploy-check-venv (from deploy/check-requirements.txt).
set -Eeuo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

VENV="$ROOT/target/deploy-check-venv"
REQUIREMENTS="$ROOT/deploy/check-requirements.txt"

venv() {
    if ! cmp -s "$REQUIREMENTS" "$VENV/installed-requirements.txt"; then
        say "installing $(grep -v '^#' "$REQUIREMENTS" | tr '\n' ' ')into $VENV"
        python3 -m venv --clear "$VENV"
        "$VENV/bin/python" -m pip install --quiet -r "$REQUIREMENTS"
        cp "$REQUIREMENTS" "$VENV/installed-requirements.txt"
    fi
}

yaml_lint() {
    say "yamllint"
    "$VENV/bin/yamllint" --strict -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}' \
        deploy/compose/compose.yaml deploy/k8s/*.yaml deploy/monitoring/alerts.yaml
}

kubernetes() {
    say "kubernetes-validate deploy/k8s"
    "$VENV/bin/kubernetes-validate" --strict deploy/k8s/*.yaml
}

compose() {
    if command -v podman >/dev/null; then
        say "podman-compose config"
        "$VENV/bin/podman-compose" -f deploy/compose/compose.yaml config >/dev/null
    else
        note "podman is not installed here: podman-compose config skipped (yamllint checked the file)"
    fi
}

rules() {
    if ! command -v promtool >/dev/null; then
        apt_install prometheus
    fi
    say "promtool check rules"
    promtool check rules deploy/monitoring/alerts.yaml
    local panels="$ROOT/target/deploy-check-dashboard-rules.yaml"
    python3 - deploy/monitoring/dashboard.json >"$panels" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard-panels\n    rules:")
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        print(f"      - record: panel_{panel['id']}_{target['refId']}")
        print(f"        expr: {json.dumps(target['expr'])}")
PY
    promtool check rules "$panels"
}

main() {
    cd "$ROOT"
    venv
    yaml_lint
    kubernetes
    compose
    rules
    note "deployment files valid"
}

main "$@"
