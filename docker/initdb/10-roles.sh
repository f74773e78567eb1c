#!/usr/bin/env bash
# Creates the ingestor's and the viewer's roles. The postgres image runs this once, when it initialises
# an empty data volume (/docker-entrypoint-initdb.d), as POSTGRES_USER on POSTGRES_DB.
#
#   INGESTOR_DB_USER / INGESTOR_DB_PASSWORD  the ingestor: creates and migrates the schema, writes rows.
#       PostgreSQL 15 no longer lets every role create tables in schema public, so it gets
#       CREATE and USAGE on it explicitly (GRANT ALL ON DATABASE is not enough).
#   VIEWER_DB_USER / VIEWER_DB_PASSWORD      read-only (IRIS Data Explorer): CONNECT and USAGE here, and
#       SELECT on every table the ingestor creates, now (granted by its migrations) and later
#       (default privileges).
set -euo pipefail

: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${INGESTOR_DB_USER:?set INGESTOR_DB_USER}" "${INGESTOR_DB_PASSWORD:?set INGESTOR_DB_PASSWORD}"
: "${VIEWER_DB_USER:?set VIEWER_DB_USER}" "${VIEWER_DB_PASSWORD:?set VIEWER_DB_PASSWORD}"

# Values are passed as psql variables and quoted by psql (:"name" for identifiers, :'value' for
# literals), so no password or name is ever spliced into SQL text by the shell.
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v db="$POSTGRES_DB" \
    -v ingestor="$INGESTOR_DB_USER" -v ingestor_password="$INGESTOR_DB_PASSWORD" \
    -v viewer="$VIEWER_DB_USER" -v viewer_password="$VIEWER_DB_PASSWORD" <<'SQL'
CREATE ROLE :"ingestor" LOGIN PASSWORD :'ingestor_password';
CREATE ROLE :"viewer" LOGIN PASSWORD :'viewer_password';

GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"ingestor";
GRANT CREATE, USAGE ON SCHEMA public TO :"ingestor";

GRANT CONNECT ON DATABASE :"db" TO :"viewer";
GRANT USAGE ON SCHEMA public TO :"viewer";
ALTER DEFAULT PRIVILEGES FOR ROLE :"ingestor" IN SCHEMA public GRANT SELECT ON TABLES TO :"viewer";
SQL
