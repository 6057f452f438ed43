#!/usr/bin/env bash
# A local PostgreSQL primary + streaming replica without Docker, from the server binaries on the machine
# (initdb, pg_ctl, pg_basebackup -R), in its own folder and on its own ports: for trying failover by hand.
#
#   scripts/pg-pair.sh start      initdb + start the primary (PG_PAIR_PORT, default 55632), clone and start the replica (+1)
#   scripts/pg-pair.sh url        print the DATABASE_URL naming both, with target_session_attrs=read-write
#   scripts/pg-pair.sh kill       SIGKILL the primary's postmaster and backends (a dead machine, no shutdown)
#   scripts/pg-pair.sh promote    pg_ctl promote the replica: it takes writes; the sink finds it by itself
#   scripts/pg-pair.sh status     which server is up, which is in recovery
#   scripts/pg-pair.sh stop       stop both (immediate)      scripts/pg-pair.sh reset   stop and delete the folder
#
# As root the server tools run as the postgres user (initdb refuses root). Never touches another cluster.
set -euo pipefail
PORT="${PG_PAIR_PORT:-55632}"
DIR="${PG_PAIR_DIR:-$HOME/.bankstream/pg-pair}"
BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
[ -n "$BIN" ] || { echo "pg-pair: no PostgreSQL server binaries under /usr/lib/postgresql (set PG_BIN)" >&2; exit 1; }
A="$DIR/a" B="$DIR/b" PORT_B=$((PORT + 1))

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_node() { # data dir, port, name
  as_pg "$BIN/pg_ctl" -D "$1" -l "$DIR/$3.log" -w start \
    -o "-p $2 -k $DIR -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=4 -c hot_standby=on -c cluster_name=bankstream-$3"
}
is_up() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1"; }

case "${1:-}" in
  start)
    mkdir -p "$DIR"; [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
    [ -d "$A" ] || as_pg "$BIN/initdb" -D "$A" -A trust -U postgres >/dev/null
    is_up "$PORT" || start_node "$A" "$PORT" a
    [ -d "$B" ] || as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$B" -R -X stream -c fast
    is_up "$PORT_B" || start_node "$B" "$PORT_B" b
    echo "DATABASE_URL=$("$0" url)";;
  url) echo "postgres://postgres@127.0.0.1:$PORT,127.0.0.1:$PORT_B/bankstream?target_session_attrs=read-write";;
  kill)
    pid=$(head -n 1 "$A/postmaster.pid")
    kill -KILL "$pid" $(ps -o pid= --ppid "$pid") 2>/dev/null || true
    echo "primary (pid $pid) killed";;
  promote) as_pg "$BIN/pg_ctl" -D "$B" -w promote;;
  status)
    for p in "$PORT" "$PORT_B"; do
      if is_up "$p"; then echo "127.0.0.1:$p up, in recovery: $(psql -h 127.0.0.1 -p "$p" -U postgres -Atc 'SELECT pg_is_in_recovery()' postgres)"; else echo "127.0.0.1:$p down"; fi
    done;;
  stop) for d in "$A" "$B"; do [ -d "$d" ] && as_pg "$BIN/pg_ctl" -D "$d" -m immediate -w stop 2>/dev/null || true; done;;
  reset) "$0" stop; rm -rf "$DIR";;
  *) sed -n '2,13p' "$0"; exit 2;;
esac
