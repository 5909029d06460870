#!/usr/bin/env bash
# Write deploy/env/{postgres,minio,govrag}.env from the *.env.example files beside this
# script, with a fresh random value for every placeholder. The same placeholder stands for
# the same secret in every file (the govrag role's password appears in postgres.env and in
# GOVRAG_DATABASE_URL in govrag.env), so the files agree with each other. Values are hex:
# safe inside URLs without escaping. Never overwrites an existing .env file.
#   bash deploy/env/generate.sh            (then: docker compose up -d)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
umask 077

for name in postgres minio govrag; do
  if [ -e "$name.env" ]; then
    echo "generate.sh: deploy/env/$name.env exists; not overwriting (delete it to regenerate)" >&2
    exit 1
  fi
done

rand() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
pg_super=$(rand); govrag_db=$(rand); dagster_db=$(rand); minio=$(rand)

for name in postgres minio govrag; do
  sed -e "s/change-me-postgres-superuser/$pg_super/g" \
      -e "s/change-me-govrag-catalog/$govrag_db/g" \
      -e "s/change-me-dagster-storage/$dagster_db/g" \
      -e "s/change-me-minio-root/$minio/g" \
      "$name.env.example" > "$name.env"
  echo "generate.sh: wrote deploy/env/$name.env"
done
echo "generate.sh: now set GOVRAG_JWKS_URL (or GOVRAG_JWKS_FILE), GOVRAG_JWT_ISSUER and"
echo "             GOVRAG_JWT_AUDIENCE in deploy/env/govrag.env: without a way to verify tokens the"
echo "             retrieval service refuses to start (docs/deploy.md, docs/service.md)."
