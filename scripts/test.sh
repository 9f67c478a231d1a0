#!/usr/bin/env bash
# The one test command: checks formatting and lints, then runs every test.
# Installs what it needs itself, so it works on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test (unit and integration tests against the real server)"
cargo test --locked

echo
echo "All tests passed."
