#!/usr/bin/env bash
# Runs the cross-network browser tests: the server, alice and bob in three network namespaces
# that the test creates (alice and bob reach the server, never each other), two Debian
# Chromiums driven by playwright-core calling each other over HTTPS through the embedded TURN
# server. Must run as root (network namespaces, veths, iptables). Installs what it needs itself,
# so it works on a fresh machine: chromium, iproute2, iptables, iputils-ping, curl, openssl,
# coturn (apt) if missing, playwright-core (npm ci), the server (cargo build).
# Exits non-zero when a test fails; screenshots and logs go to test-artifacts/netns/.
#
#   bash tests/netns/run.sh                        # the tests
#   bash tests/netns/run.sh --bench [--calls 10]   # call setup, relayed vs direct (BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/netns/run.sh must run as root: it creates network namespaces, veth pairs and iptables rules" >&2
  exit 1
fi

missing=()
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ] || missing+=(chromium)
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
command -v ping >/dev/null || missing+=(iputils-ping)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v turnserver >/dev/null || missing+=(coturn) # the external-relay scenario runs coturn
if [ "${#missing[@]}" -gt 0 ]; then
  step "Installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be stale or missing on a fresh machine: refresh them only if needed.
  apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; }
fi

step "Installing playwright-core (npm ci)"
# playwright-core never downloads a browser of its own; the tests use /usr/bin/chromium.
npm ci --no-audit --no-fund

step "Building the server (cargo build)"
(cd "$ROOT" && cargo build)

mkdir -p "$ROOT/test-artifacts/netns"

# The namespaces are named after this shell's pid; node removes them when it exits, and this
# trap does too should node itself be killed (ending what still runs inside them first).
export SB_NETNS_PREFIX="sb$$"
cleanup() {
  for ns in "${SB_NETNS_PREFIX}srv" "${SB_NETNS_PREFIX}a" "${SB_NETNS_PREFIX}b"; do
    if ip netns list | grep -qw "^$ns"; then
      ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${1:-}" = "--bench" ]; then
  shift
  step "Call setup, relayed vs direct (network namespaces)"
  node bench-call-setup.mjs "$@"
else
  step "Running the cross-network browser tests (network namespaces)"
  # One scenario at a time: two browsers with live video are plenty for two cores. The longest
  # scenario watches a call for 40 s after it connects.
  node --test --test-concurrency=1 --test-timeout=240000 --test-reporter=spec netns.test.mjs
fi
