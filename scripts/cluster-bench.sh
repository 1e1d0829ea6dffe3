#!/usr/bin/env bash
# Three replicas on this machine against one node alone, with the same load: residents'
# payments as batches and as single requests (`machi-bench payments`). Prints one line per
# run (committed tx/s, p50, p99, errors) and the ratios, with the machine's limit L (the
# ledger's batch verification rate on all cores, measured by machi-bench in the same run).
#
#   scripts/cluster-bench.sh [SECONDS_PER_RUN] [RUNS]
#
# Each (setup, mode) is run RUNS times (default 3) and the median is reported. Everything
# lives in a temporary folder and on ports 7301-7313; nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
RUNS=${2:-3}
RESIDENTS=${MACHI_BENCH_RESIDENTS:-2000}
cargo build --release -q -p machi-node -p machi-bench
NODE=$PWD/target/release/machi-node
BENCH=$PWD/target/release/machi-bench
WORK=$(mktemp -d)
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

wait_for() { # URL: until it answers
    for _ in $(seq 1 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done
    echo "no answer from $1" >&2; return 1
}

leader_url() { # the api address of the replica that leads, from any replica's /v1/cluster
    for _ in $(seq 1 200); do
        url=$(curl -sf "http://127.0.0.1:7311/v1/cluster" | python3 -c '
import json, sys
c = json.load(sys.stdin)
m = [m for m in c["members"] if m["id"] == c["leader"] and m["role"] == "leader"]
print("http://" + m[0]["api_addr"] if m else "")' 2>/dev/null || true)
        [ -n "$url" ] && { echo "$url"; return 0; }
        sleep 0.05
    done
    echo "no leader" >&2; return 1
}

start_alone() {
    rm -rf "$WORK/alone"
    "$NODE" init --data-dir "$WORK/alone" --chain-id bench-alone >/dev/null
    "$NODE" run --data-dir "$WORK/alone" --listen 127.0.0.1:7301 >/dev/null 2>"$WORK/alone.log" &
    PIDS+=($!)
    wait_for http://127.0.0.1:7301/v1/health
    URL=http://127.0.0.1:7301
    TOWN_KEY=$WORK/alone/keys/town.key
}

start_cluster() {
    rm -rf "$WORK"/r? "$WORK/cluster.toml"
    for i in 1 2 3; do
        key=$("$NODE" keygen --data-dir "$WORK/r$i" | tail -1)
        cat >>"$WORK/cluster.toml" <<EOF
[[replica]]
id = $i
name = "replica $i"
api_addr = "127.0.0.1:731$i"
raft_addr = "127.0.0.1:732$i"
producer_key = "$key"
voter = true

EOF
    done
    "$NODE" init --data-dir "$WORK/r1" --chain-id bench-cluster --cluster "$WORK/cluster.toml" >/dev/null
    for i in 2 3; do "$NODE" init --data-dir "$WORK/r$i" --genesis "$WORK/r1/genesis.json" >/dev/null; done
    for i in 1 2 3; do
        "$NODE" run --data-dir "$WORK/r$i" >/dev/null 2>"$WORK/r$i.log" &
        PIDS+=($!)
    done
    for i in 1 2 3; do wait_for "http://127.0.0.1:731$i/v1/health"; done
    URL=$(leader_url)
    TOWN_KEY=$WORK/r1/keys/town.key
}

# One run: a fresh chain, the town set up, then the load; prints the JSON line.
run_once() { # SETUP MODE
    "start_$1"
    local args=(payments --node "$URL" --town-key "$TOWN_KEY" --residents "$RESIDENTS" --shops 40
        --duration "$SECONDS_PER_RUN" --mode "$2" --json)
    if [ "$2" = single ]; then args+=(--concurrency "${MACHI_BENCH_SINGLE_CONCURRENCY:-64}"); else args+=(--concurrency 4 --batch-size 512); fi
    "$BENCH" "${args[@]}" >"$WORK/out.json" || true
    stop_all
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"tx_per_s": r["committed_tx_per_s"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                  "errors": r["errors"], "L": r["limits"]["ledger_batch_verify_per_s"]}))' "$WORK/out.json"
}

RESULTS=$WORK/results.jsonl
for mode in ${MACHI_BENCH_MODES:-batch single}; do
    for setup in alone cluster; do
        for run in $(seq 1 "$RUNS"); do
            line=$(run_once "$setup" "$mode")
            echo "$setup $mode run $run: $line"
            echo "{\"setup\": \"$setup\", \"mode\": \"$mode\", \"r\": $line}" >>"$RESULTS"
        done
    done
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def median(setup, mode, key):
    return statistics.median(r["r"][key] for r in rows if r["setup"] == setup and r["mode"] == mode)
L = statistics.median(r["r"]["L"] for r in rows)
print(f"\nmedians of each setup and mode; L (ledger batch verification, all cores) = {L:,.0f}/s")
print(f"{'mode':8} {'setup':9} {'tx/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'× L':>6}")
for mode in [m for m in ["batch", "single"] if any(r["mode"] == m for r in rows)]:
    for setup in ["alone", "cluster"]:
        t = median(setup, mode, "tx_per_s")
        print(f"{mode:8} {setup:9} {t:9,.0f} {median(setup, mode, 'p50_ms'):8.1f} "
              f"{median(setup, mode, 'p99_ms'):8.1f} {t / L:6.3f}")
    ratio = median("cluster", mode, "tx_per_s") / median("alone", mode, "tx_per_s")
    print(f"{mode:8} three replicas / one node: {ratio:.2f}×")
EOF
