#!/usr/bin/env bash
# Benchmarks Switchboard against a PeerJS server on this machine, under the same load.
#
#   bench/compare.sh [switchboard-bench flags…]     e.g. --quick, --scenarios a,b --pairs 10,100
#
# Builds both binaries (release), installs the PeerJS server (npm package `peer`, pinned by
# bench/peerjs/package-lock.json), raises the open-file limit, starts Switchboard (fresh SQLite
# file, open registration, send rate limits raised, RUST_LOG=warn) and PeerJS on free loopback
# ports, waits until both answer, runs the generator against both, and stops both whatever
# happens. The JSON report goes to bench/results/latest.json; the servers' logs to
# bench/results/*.log. The exit status is the generator's (non-zero on any lost, duplicated or
# reordered signal).
#
# Environment:
#   BENCH_PROFILE=debug      use debug builds (the smoke run does)
#   SWITCHBOARD_BIN=PATH     run this server binary instead of building one
#   BENCH_JSON=PATH          where the JSON report goes
#   SWITCHBOARD_*            any server setting; the bench's defaults below apply only when unset
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
profile="${BENCH_PROFILE:-release}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
results="$here/results"
json="${BENCH_JSON:-$results/latest.json}"
mkdir -p "$results"

say() { printf '[compare] %s\n' "$*" >&2; }

# --- build ------------------------------------------------------------------------------------
cargo_flags=()
[[ "$profile" == release ]] && cargo_flags+=(--release)
packages=(-p switchboard-bench)
[[ -z "${SWITCHBOARD_BIN:-}" ]] && packages+=(-p switchboard)
say "building ${packages[*]} ($profile)"
(cd "$root" && cargo build "${cargo_flags[@]}" "${packages[@]}")
bench_bin="$target_dir/$profile/switchboard-bench"
switchboard_bin="${SWITCHBOARD_BIN:-$target_dir/$profile/switchboard}"

# --- PeerJS -----------------------------------------------------------------------------------
peerjs_dir="$here/peerjs"
if [[ ! -f "$peerjs_dir/node_modules/.package-lock.json" \
      || "$peerjs_dir/package-lock.json" -nt "$peerjs_dir/node_modules/.package-lock.json" ]]; then
    say "installing the PeerJS server (npm ci)"
    npm ci --prefix "$peerjs_dir" --no-audit --no-fund >&2
fi
peerjs_main="$peerjs_dir/node_modules/peer/dist/bin/peerjs.js"

# --- limits -----------------------------------------------------------------------------------
# Tens of thousands of idle sockets, in the servers and in the generator (children inherit it).
if ! ulimit -n 200000 2>/dev/null; then
    say "could not raise the open-file limit (now $(ulimit -n)); large idle runs will fail"
fi

# --- start the servers ------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")"
switchboard_pid=""
peerjs_pid=""
stop_servers() {
    local status=$?
    for pid in $switchboard_pid $peerjs_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $switchboard_pid $peerjs_pid; do
        wait "$pid" 2>/dev/null || true
    done
    cp "$work"/*.log "$results/" 2>/dev/null || true
    rm -rf "$work"
    exit "$status"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

free_port() {
    local port
    for port in $(seq "$1" $(($1 + 500))); do
        if ! ss -Hltn "sport = :$port" | grep -q .; then
            echo "$port"
            return
        fi
    done
    say "no free port from $1"
    return 1
}

: "${SWITCHBOARD_DATABASE_URL:=sqlite://$work/bench.db}"
: "${SWITCHBOARD_OPEN_REGISTRATION:=true}"
# The product limits one user to 100 signals/s (burst 400); a bench user sends far more.
: "${SWITCHBOARD_SEND_RATE_PER_SECOND:=1000000}"
: "${SWITCHBOARD_SEND_BURST:=1000000}"
: "${SWITCHBOARD_TURN_ENABLED:=false}" # the signal benchmark measures signals, not media relay
# The per-signal [P2P_SEND] info line is product diagnostics; the bench measures relaying.
: "${RUST_LOG:=warn}"
export SWITCHBOARD_DATABASE_URL SWITCHBOARD_OPEN_REGISTRATION SWITCHBOARD_SEND_RATE_PER_SECOND \
    SWITCHBOARD_SEND_BURST SWITCHBOARD_TURN_ENABLED RUST_LOG

say "starting Switchboard ($switchboard_bin)"
"$switchboard_bin" serve --listen 127.0.0.1:0 >"$work/switchboard.log" 2>&1 &
switchboard_pid=$!

peerjs_port="$(free_port 19000)"
say "starting PeerJS on port $peerjs_port"
node "$peerjs_main" --host 127.0.0.1 --port "$peerjs_port" --path / --key peerjs \
    --concurrent_limit 1000000 --alive_timeout 60000 >"$work/peerjs.log" 2>&1 &
peerjs_pid=$!

# --- wait until both answer -------------------------------------------------------------------
switchboard_url=""
for _ in $(seq 600); do
    kill -0 "$switchboard_pid" 2>/dev/null || { cat "$work/switchboard.log" >&2; say "Switchboard exited"; exit 2; }
    kill -0 "$peerjs_pid" 2>/dev/null || { cat "$work/peerjs.log" >&2; say "PeerJS exited"; exit 2; }
    if [[ -z "$switchboard_url" ]]; then
        switchboard_url="$(sed -n 's/^Switchboard is running on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/switchboard.log" | head -n1)"
    fi
    if [[ -n "$switchboard_url" ]] \
        && curl -fsS -o /dev/null "$switchboard_url/healthz" 2>/dev/null \
        && curl -fsS -o /dev/null "http://127.0.0.1:$peerjs_port/" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
[[ -n "$switchboard_url" ]] || { say "Switchboard did not start within 60 s"; exit 2; }
say "Switchboard $switchboard_url (pid $switchboard_pid), PeerJS http://127.0.0.1:$peerjs_port/ (pid $peerjs_pid)"

# --- run --------------------------------------------------------------------------------------
set +e
"$bench_bin" \
    --switchboard "$switchboard_url" --switchboard-pid "$switchboard_pid" \
    --peerjs "http://127.0.0.1:$peerjs_port/" --peerjs-pid "$peerjs_pid" \
    --json "$json" "$@"
status=$?
set -e
say "JSON report: $json"
exit "$status"
