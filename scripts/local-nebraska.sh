#!/usr/bin/env bash
# Starts a real Nebraska on loopback for trying a push by hand: PostgreSQL 15
# on 127.0.0.1:$PG_PORT (default 55433) with a fresh cluster, and the given
# nebraska binary on 127.0.0.1:$NEBRASKA_PORT (default 18000), no
# authentication (-auth-mode noop), serving $DIR/packages at /flatcar/.
# Everything lives in $DIR (default /tmp/augen-nebraska).
#   scripts/local-nebraska.sh [--dev-channel] NEBRASKA_BINARY
#   scripts/local-nebraska.sh --stop
# --dev-channel also creates a dev-channel (amd64) and a group whose track
# routes clients to it, as an admin would. doc/push.md §8 has the rest.
set -euo pipefail
DIR=${DIR:-/tmp/augen-nebraska}
PG_PORT=${PG_PORT:-55433}
NEBRASKA_PORT=${NEBRASKA_PORT:-18000}
PG=${AUGEN_PG_BIN:-/usr/lib/postgresql/15/bin}
APP=e96281a6-d1af-4bde-9a0a-97b76e56dc57
url=http://127.0.0.1:$NEBRASKA_PORT

stop() {
  if [ -f "$DIR/nebraska.pid" ]; then kill "$(cat "$DIR/nebraska.pid")" 2>/dev/null || true; fi
  if [ -f "$DIR/pg/postmaster.pid" ]; then kill -INT "$(head -1 "$DIR/pg/postmaster.pid")" 2>/dev/null || true; fi
  for _ in $(seq 50); do [ -f "$DIR/pg/postmaster.pid" ] || break; sleep 0.2; done
  rm -rf "$DIR"
  echo "stopped; removed $DIR"
}
if [ "${1:-}" = --stop ]; then stop; exit 0; fi
dev=
if [ "${1:-}" = --dev-channel ]; then dev=1; shift; fi
bin=${1:?usage: scripts/local-nebraska.sh [--dev-channel] NEBRASKA_BINARY | --stop}
[ -x "$bin" ] || { echo "local-nebraska: $bin is not an executable"; exit 1; }
[ -x "$PG/postgres" ] || { echo "local-nebraska: no PostgreSQL 15 in $PG (apt-get install postgresql-15, or set AUGEN_PG_BIN)"; exit 1; }
[ -e "$DIR" ] && { echo "local-nebraska: $DIR exists: run DIR=$DIR scripts/local-nebraska.sh --stop first"; exit 1; }
mkdir -p "$DIR"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$PG/initdb" -D "$DIR/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log"
"${as_pg[@]}" "$PG/pg_ctl" -D "$DIR/pg" -w -l "$DIR/postgres.log" \
  -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$DIR" start >/dev/null
mkdir -p "$DIR/packages" "$DIR/static"
NEBRASKA_DB_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
  nohup "$bin" -port "$NEBRASKA_PORT" -auth-mode noop -nebraska-url "$url" \
  -host-flatcar-packages -flatcar-packages-path "$DIR/packages" -http-static-dir "$DIR/static" \
  >"$DIR/nebraska.log" 2>&1 &
echo $! >"$DIR/nebraska.pid"
for _ in $(seq 300); do curl -fsS "$url/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$url/health" >/dev/null || { echo "local-nebraska: not healthy; see $DIR/nebraska.log"; tail -20 "$DIR/nebraska.log"; stop; exit 1; }
if [ -n "$dev" ]; then
  ch=$(curl -fsS -X POST "$url/api/apps/$APP/channels" -H 'Content-Type: application/json' \
    -d "{\"name\":\"dev-channel\",\"color\":\"#777777\",\"arch\":1,\"application_id\":\"$APP\"}" | sed 's/.*"id":"\([^"]*\)".*/\1/')
  curl -fsS -X POST "$url/api/apps/$APP/groups" -H 'Content-Type: application/json' \
    -d "{\"name\":\"Dev (AMD64)\",\"description\":\"dev\",\"application_id\":\"$APP\",\"channel_id\":\"$ch\",\"track\":\"dev-channel\",\"policy_updates_enabled\":true,\"policy_safe_mode\":false,\"policy_office_hours\":false,\"policy_timezone\":\"UTC\",\"policy_period_interval\":\"1 minutes\",\"policy_max_updates_per_period\":999999,\"policy_update_timeout\":\"60 minutes\"}" >/dev/null
  echo "created dev-channel ($ch) and its group (track dev-channel)"
fi
cat <<EOT
Nebraska $url (auth noop), PostgreSQL 127.0.0.1:$PG_PORT, in $DIR
  store:   --store file://$DIR/packages --public-url $url/flatcar/
  status:  augen push status --server $url --channel alpha
  stop:    DIR=$DIR scripts/local-nebraska.sh --stop
EOT
