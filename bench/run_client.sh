#!/bin/sh
# Client benchmarks: authkestra vs Authlib vs httpx-auth (see bench/README.md).
#   bench/run_client.sh            every case (a few minutes)
#   bench/run_client.sh hot        one case: cold, expiry, fleet, hot, rollover, profile
set -eu
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/client_bench.py "${@:-all}"
