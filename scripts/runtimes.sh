#!/usr/bin/env bash
# Runs the runtime conformance subset (__test__/runtimes/conformance.cjs) on Bun 1 and Deno 2,
# installed from the npm registry (packages `bun` and `deno`), and on this Node with the
# threadsafe-function completion path forced, against the binding and JavaScript already
# built. ava does not run on Bun or Deno, hence the plain script. Fails if any check fails or
# a runtime does not start.
#   bash scripts/runtimes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${TMPDIR:-/tmp}/kaio-runtimes"
if [ ! -x "$dir/node_modules/.bin/bun" ] || [ ! -x "$dir/node_modules/.bin/deno" ]; then
  npm install --prefix "$dir" --no-save --no-audit --no-fund --silent bun@1 deno@2 >/dev/null
fi
bin="$dir/node_modules/.bin"
echo "== conformance on bun $("$bin/bun" --version)"
"$bin/bun" __test__/runtimes/conformance.cjs
echo "== conformance on $("$bin/deno" --version | head -1)"
"$bin/deno" run -A __test__/runtimes/conformance.cjs
echo "== conformance on node $(node --version), threadsafe-function completion path"
KAIO_NO_UV_POLL=1 node __test__/runtimes/conformance.cjs
