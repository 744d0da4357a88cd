#!/usr/bin/env bash
# deploy/compose/secrets.sh — makes the files compose.yaml mounts as secrets, once; kept after.
#
# Why: secrets live in files beside the compose file (git-ignored), never in an image. Running it
# again changes nothing (nats-credentials keeps existing seeds; existing files are left alone).
#   secrets/token-secret, secrets/postgres-password   48 random bytes, base64
#   secrets/credentials/<service>.nk, auth.conf       remediation-admin nats-credentials
#   secrets/database.env                              DATABASE_URL for the projector and queries
set -Eeuo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$HERE/../.." && pwd -P)
SECRETS="$HERE/secrets"
umask 077
mkdir -p "$SECRETS"

random() { head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_'; }
for name in token-secret postgres-password; do
    [[ -s $SECRETS/$name ]] || random >"$SECRETS/$name"
done
if [[ ! -s $SECRETS/database.env ]]; then
    printf 'DATABASE_URL=postgres://postgres:%s@postgres:5432/kh63\n' \
        "$(cat "$SECRETS/postgres-password")" >"$SECRETS/database.env"
fi

admin="$ROOT/target/release/remediation-admin"
if [[ ! -x $admin ]]; then
    (cd "$ROOT" && cargo build --release -p remediation-admin)
fi
"$admin" nats-credentials --dir "$SECRETS/credentials"
# The services run as 65532 and the postgres image reads its password file as user postgres:
# the bind-mounted secrets must be readable to them. The directory itself stays 0700, so nobody
# else on the host reaches them (database.env is read by compose itself and stays 0600).
chmod 0644 "$SECRETS"/credentials/*.nk "$SECRETS/credentials/auth.conf" "$SECRETS/token-secret" \
    "$SECRETS/postgres-password"
echo "secrets in $SECRETS"
