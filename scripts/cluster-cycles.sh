#!/usr/bin/env bash
# The long run of leader kills: three replicas as real machi-node processes under a load of
# clients writing through all of them; the leader is killed with SIGKILL CYCLES times
# (default 50), restarted and caught up each time; at the end every acknowledged
# transaction is looked up on every replica, every transaction sent is on the chain once,
# and the replicas' exports are byte-identical and verify. Prints each failover (kill to
# the next commit) and a summary line with min / median / max.
#
#   scripts/cluster-cycles.sh [CYCLES]
#
# Release build (the product's); everything lives in a temporary folder on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
export MACHI_CLUSTER_CYCLES=${1:-50}
time cargo test --release -p machi-node --test it cluster::leader_kill_cycles -- --nocapture
