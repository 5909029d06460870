#!/usr/bin/env bash
# Runs once, when the postgres container starts on an EMPTY data volume (the official image
# runs /docker-entrypoint-initdb.d/* then). Creates one role and one database per user of
# the server, neither of them a superuser:
#   govrag  / database govrag   the govrag catalog (GOVRAG_DATABASE_URL); govrag runs its own
#                               Alembic migrations on start
#   dagster / database dagster  Dagster's runs, event log, schedules (deploy/dagster/dagster.yaml)
# Passwords come from deploy/env/postgres.env (GOVRAG_DB_PASSWORD, DAGSTER_PG_PASSWORD) and
# must equal the ones in deploy/env/govrag.env. Changing them later: ALTER ROLE ... PASSWORD,
# this script does not run again on a volume that already holds a cluster.
set -euo pipefail

: "${GOVRAG_DB_PASSWORD:?set GOVRAG_DB_PASSWORD in deploy/env/postgres.env}"
: "${DAGSTER_PG_PASSWORD:?set DAGSTER_PG_PASSWORD in deploy/env/postgres.env}"

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
     -v govrag_pw="${GOVRAG_DB_PASSWORD}" -v dagster_pw="${DAGSTER_PG_PASSWORD}" <<'SQL'
CREATE ROLE govrag LOGIN PASSWORD :'govrag_pw';
CREATE DATABASE govrag OWNER govrag;
REVOKE ALL ON DATABASE govrag FROM PUBLIC;

CREATE ROLE dagster LOGIN PASSWORD :'dagster_pw';
CREATE DATABASE dagster OWNER dagster;
REVOKE ALL ON DATABASE dagster FROM PUBLIC;
SQL
echo "govrag-initdb: created roles and databases govrag, dagster"
