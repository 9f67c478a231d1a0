#!/usr/bin/env bash
# The scale-out figures: two Switchboard nodes on one PostgreSQL database and one Redis, the two
# users of every pair on different nodes (so every signal crosses the Redis bus), no PeerJS.
#
#   bench/two-nodes.sh [switchboard-bench flags…]     e.g. --scenarios a,b --pairs 10,100
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Redis on 127.0.0.1:6379. Creates a
# fresh database `switchboard_bench_<pid>` and drops it afterwards; stops both nodes by PID.
# CPU figures are the first node's only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$here/results"
(cd "$root" && cargo build --release -p switchboard -p switchboard-bench)

db="switchboard_bench_$$"
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db"
work="$(mktemp -d)"
pids=()
finish() {
    local status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db" || true
    cp "$work"/*.log "$here/results/" 2>/dev/null || true
    rm -rf "$work"
    exit "$status"
}
trap finish EXIT

export SWITCHBOARD_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export SWITCHBOARD_REDIS_URL="redis://127.0.0.1:6379"
export SWITCHBOARD_REDIS_PREFIX="bench$$"
export SWITCHBOARD_OPEN_REGISTRATION=true SWITCHBOARD_SEND_RATE_PER_SECOND=1000000 \
    SWITCHBOARD_SEND_BURST=1000000 SWITCHBOARD_TURN_ENABLED=false RUST_LOG="${RUST_LOG:-warn}"
urls=()
for node in a b; do
    "$target_dir/release/switchboard" serve --listen 127.0.0.1:0 >"$work/node-$node.log" 2>&1 &
    pids+=($!)
    url=""
    for _ in $(seq 600); do
        url="$(sed -n 's/^Switchboard is running on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/node-$node.log" | head -n1)"
        [[ -n "$url" ]] && curl -fsS -o /dev/null "$url/healthz" 2>/dev/null && break
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/node-$node.log" >&2; exit 2; }
        sleep 0.1
    done
    [[ -n "$url" ]] || { echo "node $node did not start" >&2; exit 2; }
    urls+=("$url")
done
echo "[two-nodes] ${urls[*]} (pids ${pids[*]}), database $db" >&2
"$target_dir/release/switchboard-bench" --switchboard "${urls[0]}" --switchboard-node "${urls[1]}" \
    --switchboard-pid "${pids[0]}" --json "$here/results/two-nodes.json" "$@"
