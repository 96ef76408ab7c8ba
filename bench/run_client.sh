#!/bin/sh
# Client benchmarks: authkestra vs Authlib vs httpx-auth (see bench/README.md).
#   bench/run_client.sh            every case (a few minutes)
#   bench/run_client.sh hot        one case: cold, expiry, fleet, hot, rollover, profile
#   bench/run_client.sh --smoke    every case, seconds each: do they still work?
set -eu
cd "$(dirname "$0")/.."
options="--charts bench/results"   # each table drawn too (matplotlib: make bench)
if [ "${1:-}" = "--smoke" ]; then options="--smoke"; shift; fi
for case in ${@:-cold expiry fleet hot rollover profile}; do
    .venv/bin/python "bench/client_$case.py" $options
done
