#!/usr/bin/env bash
# The PostgreSQL peer: the same double-entry payment as machi's, done by PostgreSQL with
# synchronous_commit on, at the same concurrency, on this machine, in the same run.
#   scripts/pg-peer.sh [CONCURRENCY] [SECONDS]      defaults: 256 10
# Installs PostgreSQL from Debian's packages if missing, starts it on loopback in a temp
# folder, runs pgbench with a transfer script (debit a resident's row, credit a shop's
# row, insert a ledger row; one transaction each; 10,000 residents pay 40 shops, so shop
# rows are hot), then starts a machi node in a temp folder and runs
# `machi-bench payments --mode single` at the same concurrency, and prints both.
set -euo pipefail
cd "$(dirname "$0")/.."
clients="${1:-256}"
seconds="${2:-10}"
residents=10000
shops=40

pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$pgbin" ] || [ ! -x "$pgbin/postgres" ]; then
  echo "installing PostgreSQL from Debian's packages..." >&2
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi
command -v pgbench >/dev/null || apt-get install -y -qq postgresql-contrib >/dev/null || true
pgbench_bin="$(command -v pgbench || echo "$pgbin/pgbench")"

work="$(mktemp -d)"
chown postgres "$work" 2>/dev/null || true
port=54329
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -n "${node_pid:-}" ] && kill "$node_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

as_pg "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
cat >> "$work/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
max_connections = $((clients + 20))
synchronous_commit = on
fsync = on
shared_buffers = 256MB
unix_socket_directories = '$work'
CONF
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
psql=(psql -h 127.0.0.1 -p "$port" -U postgres -q -v ON_ERROR_STOP=1)
"${psql[@]}" <<SQL
CREATE TABLE residents (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE shops (id int PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE ledger (id bigserial PRIMARY KEY, resident int NOT NULL, shop int NOT NULL, amount bigint NOT NULL, at timestamptz NOT NULL DEFAULT now());
INSERT INTO residents SELECT g, 125000000 FROM generate_series(1, $residents) g;
INSERT INTO shops SELECT g, 0 FROM generate_series(1, $shops) g;
SQL
cat > "$work/transfer.sql" <<SQL
\set r random(1, $residents)
\set s random(1, $shops)
\set a random(1, 100)
BEGIN;
UPDATE residents SET balance = balance - :a WHERE id = :r;
UPDATE shops SET balance = balance + :a WHERE id = :s;
INSERT INTO ledger (resident, shop, amount) VALUES (:r, :s, :a);
END;
SQL
echo "pgbench: $clients clients, $seconds s, synchronous_commit on..." >&2
pg_tps="$("$pgbench_bin" -h 127.0.0.1 -p "$port" -U postgres -n -c "$clients" -j 2 -T "$seconds" -f "$work/transfer.sql" postgres 2>/dev/null \
  | awk '/^tps/ {print int($3); exit}')"
as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null

cargo build -q --release -p machi-node -p machi-bench
node=target/release/machi-node
"$node" init --data-dir "$work/machi" --chain-id pg-peer >/dev/null
RUST_LOG=warn "$node" run --data-dir "$work/machi" --listen 127.0.0.1:0 > "$work/node.out" &
node_pid=$!
for _ in $(seq 100); do grep -q listening "$work/node.out" && break; sleep 0.1; done
url="$(sed -n 's/^machi-node listening on //p' "$work/node.out")"
machi_json="$(target/release/machi-bench payments --node "$url" --town-key "$work/machi/keys/town.key" \
  --residents "$residents" --shops "$shops" --mode single --concurrency "$clients" --duration "$seconds" --json)"
machi_tps="$(printf '%s' "$machi_json" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["committed_tx_per_s"]))')"

echo
printf '%-52s %10s\n' "payments, $clients concurrent single requests" "per second"
printf '%-52s %10s\n' "PostgreSQL (pgbench, synchronous_commit on)" "$pg_tps"
printf '%-52s %10s\n' "machi (machi-bench payments --mode single)" "$machi_tps"
python3 -c "print('machi / PostgreSQL: %.2f' % ($machi_tps / max(1, $pg_tps)))"
