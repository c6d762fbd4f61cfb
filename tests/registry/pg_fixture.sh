#!/usr/bin/env bash
# A private PostgreSQL cluster for the registry tests, on loopback only, from Debian's `postgresql`
# package: `pg_fixture.sh start STATE_DIR` runs initdb into a temp dir, starts the server on a free
# 127.0.0.1 port and writes its URL to STATE_DIR/url; `pg_fixture.sh stop STATE_DIR` stops it and removes
# everything. ctest runs them as the FIXTURES_SETUP / FIXTURES_CLEANUP pair of the registry tests.
# As root the server runs as the `postgres` user (initdb refuses root). If anything fails this exits
# non-zero and leaves no url file, so the PostgreSQL tests fail instead of skipping.
set -euo pipefail
cmd="${1:?usage: pg_fixture.sh start|stop STATE_DIR}"
state="${2:?usage: pg_fixture.sh start|stop STATE_DIR}"

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
runas=()
if [ "$(id -u)" -eq 0 ]; then runas=(runuser -u postgres --); fi

stop_cluster() {
  if [ -f "$state/cluster" ]; then
    local cluster
    cluster="$(cat "$state/cluster")"
    if [ -n "$pgbin" ] && [ -f "$cluster/data/postmaster.pid" ]; then
      "${runas[@]}" "$pgbin/pg_ctl" -D "$cluster/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$cluster"
  fi
  rm -rf "$state"
}

case "$cmd" in
  start)
    stop_cluster  # a leftover from an interrupted run
    if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
      echo "pg_fixture: PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)" >&2
      exit 1
    fi
    mkdir -p "$state"
    cluster="$(mktemp -d /tmp/tuneloop-pg.XXXXXX)"
    echo "$cluster" > "$state/cluster"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$cluster"; fi
    if ! "${runas[@]}" "$pgbin/initdb" -D "$cluster/data" -A trust -U postgres --no-sync -E UTF8 >"$state/initdb.log" 2>&1; then
      echo "pg_fixture: initdb failed:" >&2; cat "$state/initdb.log" >&2; exit 1
    fi
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    if ! "${runas[@]}" "$pgbin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 60 \
         -o "-c listen_addresses=127.0.0.1 -p $port -k $cluster -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
         start >/dev/null; then
      echo "pg_fixture: PostgreSQL did not start:" >&2; cat "$cluster/server.log" >&2; exit 1
    fi
    echo "postgresql://postgres@127.0.0.1:$port/postgres" > "$state/url"
    echo "pg_fixture: PostgreSQL on 127.0.0.1:$port (cluster $cluster)"
    ;;
  stop)
    stop_cluster
    ;;
  *)
    echo "usage: pg_fixture.sh start|stop STATE_DIR" >&2; exit 2 ;;
esac
