# Source me: start the local PostgreSQL cluster (as root) and export TUNEGATE_TEST_PG_URL.
if [ -z "${TUNEGATE_TEST_PG_URL:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || true
  for _ in $(seq 1 30); do
    su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
    sleep 0.5
  done
  su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='tunegate'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"create role tunegate login superuser password 'tunegate'\""
  su postgres -c "psql -qtAc \"select 1 from pg_database where datname='tunegate_test'\"" | grep -q 1 \
    || su postgres -c "psql -qc 'create database tunegate_test owner tunegate'"
  export TUNEGATE_TEST_PG_URL="postgresql+psycopg://tunegate:tunegate@127.0.0.1:5432/tunegate_test"
fi
