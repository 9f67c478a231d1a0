#!/usr/bin/env bash
# The one test command: checks formatting and lints, then runs every test — the Rust suite on
# SQLite, the same API suite on PostgreSQL, the multi-node tests (PostgreSQL + Redis), the
# browser tests in Chromium, and a smoke run of the benchmark against Switchboard and PeerJS. Installs what it needs itself, so it works on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and Redis (the redis-server binary, and
# 127.0.0.1:6379) must be there: start them if they are installed but stopped, otherwise fail
# with a clear message. Never skip silently.
ensure_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "PostgreSQL is not answering on 127.0.0.1:5432; starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL is required on 127.0.0.1:5432 (user postgres, database test)"; exit 1; }
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "Redis is not answering on 127.0.0.1:6379; starting it"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { echo "error: Redis is required on 127.0.0.1:6379"; exit 1; }
  fi
  command -v redis-server >/dev/null || { echo "error: the redis-server binary is required (the Redis restart test runs its own)"; exit 1; }
  # The TURN tests drive the embedded server with coturn's independent client and echo peer.
  if ! command -v turnutils_uclient >/dev/null || ! command -v turnutils_peer >/dev/null; then
    echo "installing coturn (turnutils_uclient, turnutils_peer) for the TURN tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn
  fi
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "PostgreSQL and Redis"
ensure_services

step "cargo test (unit tests; API, real-time, CLI and multi-node tests; store: SQLite; the bench's own)"
cargo test --workspace --locked

step "the API and real-time suite again, against the PostgreSQL store"
# TLS and TURN do not touch the store beyond start-up: once, on SQLite, is enough.
SWITCHBOARD_TEST_STORE=postgres cargo test --locked --test api -- --skip cluster:: --skip tls:: --skip turn::

step "browser tests (Chromium driven by Playwright; two users, a real video call)"
bash tests/browser/run.sh

step "cross-network browser tests (server, alice, bob in network namespaces; HTTPS; calls through the embedded TURN)"
bash tests/netns/run.sh

step "benchmark smoke run (switchboard-bench --quick against Switchboard and PeerJS: 0 lost, duplicated, reordered)"
bash bench/smoke.sh

echo
echo "All tests passed."
