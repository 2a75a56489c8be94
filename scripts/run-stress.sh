#!/usr/bin/env bash
# The long checks of issue 6, run by .ci/run after the test suite: the stress suite (integrity
# of 1,000,000 writes per backend, a differential soak against node:fs, queue overflow, flat
# RSS, 10,000 context cycles) and the valgrind memcheck of kaio-core and of a JS workload.
set -euo pipefail
cd "$(dirname "$0")/.."
# The differential soak runs 60 s per backend by default; CI keeps that.
export KAIO_SOAK_SECONDS="${KAIO_SOAK_SECONDS:-60}"
npm run test:stress
bash scripts/memcheck.sh
