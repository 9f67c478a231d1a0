#!/usr/bin/env bash
# Runs the real-browser tests of the web client: Playwright (playwright-core) driving Debian's
# Chromium against a real `switchboard` server that each test file starts for itself.
# Installs what it needs itself, so it works on a fresh machine:
#   Chromium (apt) if missing, playwright-core (npm ci), the server (cargo build).
# Exits non-zero when a test fails. Screenshots go to test-artifacts/ at the repo root.
#
#   bash tests/browser/run.sh                  # every test
#   bash tests/browser/run.sh call.test.mjs    # one file
set -euo pipefail
cd "$(dirname "$0")"
HERE="$(pwd)"
ROOT="$(cd ../.. && pwd)"

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  step "Installing Chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be stale or missing on a fresh machine: refresh them only if needed.
  apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }
fi

step "Installing playwright-core (npm)"
# playwright-core never downloads a browser of its own; the tests use /usr/bin/chromium.
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi

step "Building the server (cargo build)"
(cd "$ROOT" && cargo build)

mkdir -p "$ROOT/test-artifacts"

if [ "$#" -gt 0 ]; then
  TESTS=("$@")
else
  # Every test file here, in name order (a new file joins without editing this script).
  TESTS=(*.test.mjs)
fi
# One file at a time: two browsers with live video each are plenty for two cores.
CMD=(node --test --test-concurrency=1 --test-timeout=90000 --test-reporter=spec "${TESTS[@]}")

step "Running the browser tests"
# Where we may, run in a network namespace of our own that has nothing but loopback: the
# server, the browsers and their WebRTC media then cannot reach any other address at all.
# Elsewhere the harness still keeps ICE on 127.0.0.1 (see keepMediaOnLoopback in harness.mjs).
NETNS=()
if command -v unshare >/dev/null && command -v ip >/dev/null; then
  if unshare --net true 2>/dev/null; then
    NETNS=(unshare --net)
  elif unshare --map-root-user --net true 2>/dev/null; then
    NETNS=(unshare --map-root-user --net) # not root: a user namespace of our own does it
  fi
fi
if [ "${#NETNS[@]}" -gt 0 ]; then
  echo "(isolated network namespace: loopback only)"
  exec "${NETNS[@]}" bash -c 'ip link set lo up && cd "$0" && exec "$@"' "$HERE" "${CMD[@]}"
else
  echo "(no network namespace available: running on the host's loopback)"
  exec "${CMD[@]}"
fi
