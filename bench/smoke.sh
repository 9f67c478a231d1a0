#!/usr/bin/env bash
# The benchmark as a smoke test: compare.sh --quick on debug builds (what the test suite has
# already built), finishing well within a minute. Fails (non-zero) if any signal is lost,
# duplicated or reordered on either server, or a scenario cannot run.
#
#   bench/smoke.sh [more switchboard-bench flags…]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export BENCH_PROFILE="${BENCH_PROFILE:-debug}"
export BENCH_JSON="${BENCH_JSON:-$here/results/smoke.json}"
exec "$here/compare.sh" --quick "$@"
