#!/bin/bash
# Least privilege for production ClickHouse (current versions, SQL access control). Run once by
# the clickhouse image at first start (/docker-entrypoint-initdb.d), as the admin user the
# image creates from CLICKHOUSE_USER / CLICKHOUSE_PASSWORD. Three users, passwords from the
# environment (docker-compose.yml requires each to be set):
#   promo_migrator  DDL on the promo database (`promo migrate`)
#   promo_writer    insert and read the promo tables (the workers' sinks, the simulator)
#   promo_analyst   read only (reports, ad-hoc SQL, Grafana); may still set max_execution_time,
#                   which Grafana's ClickHouse plugin sends with every query (its timeout)
# No user is password-less, and `default` is not created (CLICKHOUSE_USER replaces it).
set -euo pipefail

for name in PROMO_MIGRATOR_PASSWORD PROMO_WRITER_PASSWORD PROMO_ANALYST_PASSWORD; do
  value="${!name:-}"
  if [[ -z "$value" || "$value" == *"'"* || "$value" == *"\\"* ]]; then
    echo "create-users.sh: $name must be set, without quotes or backslashes" >&2
    exit 1
  fi
done
db="${PROMO_DATABASE:-promo}"

clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE DATABASE IF NOT EXISTS ${db};
CREATE USER IF NOT EXISTS promo_migrator IDENTIFIED WITH sha256_password BY '${PROMO_MIGRATOR_PASSWORD}';
CREATE USER IF NOT EXISTS promo_writer IDENTIFIED WITH sha256_password BY '${PROMO_WRITER_PASSWORD}';
CREATE USER IF NOT EXISTS promo_analyst IDENTIFIED WITH sha256_password BY '${PROMO_ANALYST_PASSWORD}'
    SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY;
GRANT ALL ON ${db}.* TO promo_migrator;
GRANT SELECT, INSERT ON ${db}.* TO promo_writer;
GRANT SELECT ON ${db}.* TO promo_analyst;
SQL
