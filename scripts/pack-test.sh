#!/usr/bin/env bash
# Installs kaio the way a user would, from the tarballs `npm publish` would upload, and checks
# that it works from a fresh project:
#   1. `npm pack` the root package; give its manifest the optionalDependencies that
#      `napi prepublish` adds at publish time (one per package under npm/).
#   2. `npm pack` this platform's package (npm/<platform>) with the built .node copied in.
#   3. Install both tarballs into a fresh project (offline, one `npm install` command):
#      require('kaio') and `import { Context } from 'kaio'` work, the binary is loaded from
#      node_modules/kaio-<platform>, the backend is `uring` or `linux` (Linux) or `thread` (macOS), a
#      write + read round trip works, and the package's typings compile; `kaio/promises` has
#      exactly node:fs/promises' names from CommonJS and ESM, and `kaio/register` (with
#      `-r`, `--import`, and KAIO_REGISTER=0) replaces fs.promises' functions or leaves them.
#   4. Install the root tarball alone with --omit=optional: the backend is `js`, it still
#      works, and backends().linux.reason names the missing binding.
#
# Needs a build first (`npm run build`). Never touches the network: npm runs with --offline
# and an empty cache, and every package it installs is a local tarball.
# Environment: KAIO_PACK_NODE=/path/to/node runs the checks (not npm) with another Node;
# KAIO_PACK_KEEP=1 keeps the temp directory.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODE=${KAIO_PACK_NODE:-node}
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
# Where kaio is installed, nothing may pick a backend for it.
unset AIO_IMPL NAPI_RS_NATIVE_LIBRARY_PATH NAPI_RS_FORCE_WASI

say() { printf '[pack-test] %s\n' "$*"; }
die() { printf '[pack-test] FAIL: %s\n' "$*" >&2; exit 1; }

command -v npm >/dev/null || die 'npm not found'

# This host's napi-rs platform name, as the loader (binding.js) spells it.
# shellcheck disable=SC2016 # JavaScript, not shell, in single quotes
PLATFORM=$(node -e '
  const { platform, arch } = process
  let abi = ""
  if (platform === "linux") {
    const report = process.report && process.report.getReport()
    abi = report && report.header && report.header.glibcVersionRuntime ? "-gnu" : "-musl"
  }
  process.stdout.write(`${platform}-${arch}${abi}`)
')
# The default native backend here: uring where this kernel gives io_uring, else linux (Linux),
# thread elsewhere. Asked of the built package itself, so a refused io_uring is not a failure.
case "$PLATFORM" in
  linux-*) NATIVE=$("$NODE" -e 'process.stdout.write(require(process.argv[1]).implementations[0])' "$ROOT/index.js") ;;
  *) NATIVE=thread ;;
esac

BINARY="kaio.$PLATFORM.node"
for f in index.js index.d.ts binding.js binding.d.ts src/context.js src/load-binding.cjs "$BINARY"; do
  [ -e "$ROOT/$f" ] || die "$f is missing: run 'npm run build' first"
done
while IFS= read -r ts; do
  [ -f "${ts%.ts}.js" ] || die "${ts#"$ROOT"/} has no compiled .js next to it: run 'npm run build' first"
done < <(find "$ROOT/index.ts" "$ROOT/src" -name '*.ts' ! -name '*.d.ts')
[ -f "$ROOT/npm/$PLATFORM/package.json" ] || die "no per-platform package npm/$PLATFORM for this host"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kaio-pack-XXXXXX")
cleanup() { if [ "${KAIO_PACK_KEEP:-}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
mkdir -p "$WORK/tgz" "$WORK/cache"
# Offline, with an empty cache: a registry fetch would fail instead of going out.
NPM_OFFLINE=(--offline --cache "$WORK/cache" --no-audit --no-fund --ignore-scripts --loglevel=error)

# pack DIR: packs DIR into $WORK/tgz and prints the tarball's path.
pack() {
  local name
  name=$(cd "$1" && npm pack --ignore-scripts --silent --pack-destination "$WORK/tgz" | tail -n 1)
  printf '%s/tgz/%s' "$WORK" "$name"
}

say "platform $PLATFORM, native backend expected: $NATIVE, checks run with $("$NODE" --version)"

# 1. The root package, with the manifest it is published with.
raw=$(pack "$ROOT")
listing=$(tar tzf "$raw")
for f in index.js index.d.ts binding.js binding.d.ts src/context.js src/context.d.ts src/load-binding.cjs src/load-binding.d.cts \
  src/promises.js src/promises.mjs src/promises.d.ts src/register.js src/register.d.ts package.json; do
  grep -qx "package/$f" <<<"$listing" || die "the root tarball lacks $f"
done
if grep -E '\.node$|\.rs$|^package/src/[^/]*\.ts$|^package/__test__/|^package/crates/' <<<"$listing" | grep -v '\.d\.ts$'; then
  die 'the root tarball holds files a user must not get (listed above)'
fi
mkdir "$WORK/stage"
tar xzf "$raw" -C "$WORK/stage"
rm "$raw"
# shellcheck disable=SC2016
node -e '
  const fs = require("node:fs"), path = require("node:path")
  const [manifest, npmDir] = process.argv.slice(1)
  const pkg = JSON.parse(fs.readFileSync(manifest, "utf8"))
  pkg.optionalDependencies = {}
  for (const dir of fs.readdirSync(npmDir).sort()) {
    const sub = JSON.parse(fs.readFileSync(path.join(npmDir, dir, "package.json"), "utf8"))
    if (sub.version !== pkg.version) throw new Error(`${sub.name} is ${sub.version}, kaio is ${pkg.version}`)
    pkg.optionalDependencies[sub.name] = sub.version
  }
  fs.writeFileSync(manifest, JSON.stringify(pkg, null, 2) + "\n")
' "$WORK/stage/package/package.json" "$ROOT/npm"
ROOT_TGZ=$(pack "$WORK/stage/package")
say "root tarball: $(basename "$ROOT_TGZ") ($(wc -l <<<"$listing") files)"

# 2. This platform's package, with the built binary.
cp -r "$ROOT/npm/$PLATFORM" "$WORK/platform"
cp "$ROOT/$BINARY" "$WORK/platform/"
PLATFORM_TGZ=$(pack "$WORK/platform")
tar tzf "$PLATFORM_TGZ" | grep -qx "package/$BINARY" || die "the platform tarball lacks $BINARY"
say "platform tarball: $(basename "$PLATFORM_TGZ")"

# The checks, run inside each project (so `kaio` resolves to node_modules/kaio).
write_checks() {
  cat >"$1/check.cjs" <<'EOF'
'use strict'
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const expected = process.argv[2]
const kaio = require('kaio')
assert.ok(require.resolve('kaio').startsWith(path.join(__dirname, 'node_modules', 'kaio') + path.sep), 'kaio resolves inside the project')
assert.strictEqual(kaio.implementation, expected)
// The exports map: the package and its package.json, never the raw binding or internals.
assert.strictEqual(require('kaio/package.json').name, 'kaio')
for (const internal of ['kaio/binding.js', 'kaio/binding', 'kaio/src/native.js', 'kaio/src/driver.js']) {
  assert.throws(() => require(internal), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' }, internal)
}
assert.strictEqual(kaio.implementations[0], expected)
// kaio/promises: node:fs/promises' names exactly; kaio's functions, node's for the rest.
const kp = require('kaio/promises')
const nodeFsp = require('node:fs/promises')
assert.deepStrictEqual(Object.keys(kp).sort(), Object.keys(nodeFsp).sort())
for (const name of Object.keys(nodeFsp)) {
  const ours = ['open', 'readFile', 'writeFile', 'appendFile', 'copyFile', 'stat', 'lstat', 'unlink', 'rmdir', 'rename', 'mkdir', 'symlink', 'link', 'truncate'].includes(name)
  assert.strictEqual(kp[name] === nodeFsp[name], !ours, name)
}
assert.strictEqual(kp.open, kaio.open)
const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
if (expected === 'js') {
  assert.deepStrictEqual(loaded, [])
  assert.match(kaio.backends().linux.reason, /binding/)
  assert.match(kaio.backends().thread.reason, /binding/)
} else {
  assert.strictEqual(loaded.length, 1)
  assert.match(loaded[0], /node_modules[\\/]kaio-[^\\/]+[\\/]kaio\.[^\\/]+\.node$/)
}

;(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-pack-check-'))
  const fd = fs.openSync(path.join(dir, 'data'), 'w+')
  const ctx = new kaio.Context()
  try {
    assert.strictEqual(ctx.implementation, expected)
    assert.strictEqual(await ctx.write('hello from cjs', fd, 0), 14)
    const buf = await ctx.read(4096, fd, 0)
    assert.strictEqual(buf.toString(), 'hello from cjs')
    const file = path.join(dir, 'promises')
    await kp.writeFile(file, 'via kaio/promises')
    assert.strictEqual(await kp.readFile(file, 'utf8'), 'via kaio/promises')
    assert.strictEqual((await kp.stat(file)).size, 17)
  } finally {
    await ctx.close()
    fs.closeSync(fd)
    fs.rmSync(dir, { recursive: true, force: true })
  }
  console.log(`cjs ok: implementation=${kaio.implementation} implementations=${kaio.implementations.join(',')} binary=${loaded[0] ? path.relative(__dirname, loaded[0]) : 'none'}`)
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
EOF
  cat >"$1/check.mjs" <<'EOF'
import assert from 'node:assert'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import kaioDefault, { Context, implementation, implementations, backends, allocAligned } from 'kaio'
import * as kp from 'kaio/promises'
import kpDefault, { stat, readFile, open } from 'kaio/promises'
import * as nodeFsp from 'node:fs/promises'
import { createRequire } from 'node:module'

const expected = process.argv[2]
assert.strictEqual(implementation, expected)
assert.strictEqual(kaioDefault.implementation, expected)
assert.strictEqual(typeof allocAligned, 'function')
assert.strictEqual(typeof backends, 'function')
if (expected === 'js') assert.match(backends().linux.reason, /binding/)
// The ESM namespace of kaio/promises: node's names, the same values as require('kaio/promises').
assert.deepStrictEqual(Object.keys(kp).sort(), Object.keys(nodeFsp).sort())
assert.strictEqual(kpDefault, createRequire(import.meta.url)('kaio/promises'))
for (const name of Object.keys(kpDefault)) assert.strictEqual(kp[name], kpDefault[name], name)
assert.notStrictEqual(stat, nodeFsp.stat)
assert.strictEqual(nodeFsp.readdir, kp.readdir)
assert.strictEqual(open, kaioDefault.open)
assert.notStrictEqual(readFile, nodeFsp.readFile)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kaio-pack-check-'))
const fd = fs.openSync(path.join(dir, 'data'), 'w+')
const ctx = new Context()
try {
  assert.strictEqual(ctx.implementation, expected)
  assert.strictEqual(await ctx.write(Buffer.from('hello from esm'), fd, 0n), 14)
  const buf = await ctx.read(4096, fd, 0)
  assert.strictEqual(buf.toString(), 'hello from esm')
} finally {
  await ctx.close()
  fs.closeSync(fd)
  fs.rmSync(dir, { recursive: true, force: true })
}
assert.strictEqual(await readFile(new URL(import.meta.url), 'utf8'), fs.readFileSync(new URL(import.meta.url), 'utf8'))
console.log(`esm ok: implementation=${implementation} implementations=${implementations.join(',')}`)
EOF
  # kaio/register, run with -r and --import: fs.promises' functions are kaio/promises', named
  # ESM imports of node:fs/promises see them, and the app's .mjs files are read by kaio.
  cat >"$1/register.mjs" <<'EOF'
import assert from 'node:assert'
import fs from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { active, registration } from 'kaio/register'

const require = createRequire(import.meta.url)
const kp = require('kaio/promises')
const on = process.argv[2] === 'on'
assert.strictEqual(active, on)
assert.strictEqual(registration === undefined, !on)
for (const name of ['open', 'readFile', 'writeFile', 'appendFile', 'copyFile', 'stat', 'mkdir']) assert.strictEqual(fs.promises[name] === kp[name], on, name)
assert.strictEqual(readFile === kp.readFile, on)
assert.strictEqual(fs.promises.readdir, kp.readdir)
assert.strictEqual(await readFile(new URL('package.json', import.meta.url), 'utf8'), fs.readFileSync('package.json', 'utf8'))
console.log(`register ok (${process.execArgv.join(' ') || 'no preload'}, active=${active})`)
EOF
  # The typings as a user's TypeScript sees them (strict, NodeNext).
  cat >"$1/check.ts" <<'EOF'
import { Context, implementation, implementations, backends, allocAligned, isAligned, AbortError } from 'kaio'
import type { ContextOptions, Implementation, BackendStatus } from 'kaio'

const opts: ContextOptions = { maxRequests: 8 }
const impl: Implementation = implementation
const all: readonly Implementation[] = implementations
const status: BackendStatus = backends().linux
async function main(): Promise<number> {
  const ctx = new Context(opts)
  const buf: Buffer = await ctx.read(4096, 0, 0)
  const n: number = await ctx.write(allocAligned(4096), 1, 0)
  await ctx.close()
  return buf.length + n + all.length + impl.length + status.reason.length + Number(isAligned(buf)) + Number(new AbortError() instanceof Error)
}
void main
EOF
  cat >"$1/check-promises.mts" <<'EOF'
import { stat, readFile, open, constants } from 'kaio/promises'
import kp from 'kaio/promises'
import { active, registration, kRegistered } from 'kaio/register'
import type { Registration } from 'kaio/register'

const s = await stat('.')
const b: Buffer = await readFile('package.json')
const t: string = await readFile(new URL('file:///etc/hostname'), { encoding: 'utf8' })
const fh = await open('package.json', 'r', 0o666, { direct: false })
await fh.close()
const r: Registration | undefined = registration
const n: number = constants.O_RDONLY + s.size + b.length + t.length + (await kp.readdir('.')).length + Number(active) + (r?.promises.length ?? 0)
void n
void kRegistered
EOF
  cat >"$1/check-promises.cts" <<'EOF'
import fsp = require('kaio/promises')
import { readFile } from 'kaio/promises'
import reg = require('kaio/register')

async function main(): Promise<number> {
  const b: Buffer = await readFile('package.json')
  return b.length + (await fsp.lstat('.')).size + Number(reg.active)
}
void main
EOF
  cat >"$1/tsconfig.json" <<EOF
{
  "compilerOptions": {
    "strict": true, "noEmit": true, "module": "NodeNext", "moduleResolution": "NodeNext",
    "target": "ES2022", "lib": ["ES2023", "ESNext.Disposable"], "skipLibCheck": false,
    "types": ["node"], "typeRoots": ["$ROOT/node_modules/@types"]
  },
  "files": ["check.ts", "check-promises.mts", "check-promises.cts"]
}
EOF
}

# run_checks DIR EXPECTED
run_checks() {
  (cd "$1" && "$NODE" check.cjs "$2" && "$NODE" check.mjs "$2") || die "checks failed in $1 (expected $2)"
  (cd "$1" && "$NODE" --import kaio/register register.mjs on && "$NODE" -r kaio/register register.mjs on &&
    NODE_OPTIONS='--import kaio/register' "$NODE" register.mjs on && NODE_OPTIONS='-r kaio/register' "$NODE" register.mjs on &&
    KAIO_REGISTER=0 "$NODE" --import kaio/register register.mjs off) || die "kaio/register checks failed in $1"
  # shellcheck disable=SC2016
  (cd "$1" && "$NODE" --input-type=module -e 'import { stat } from "kaio/promises"; if (typeof stat !== "function") process.exit(1)') ||
    die "import { stat } from 'kaio/promises' failed in $1"
}

# 3. With the platform package: both tarballs in one command, so npm takes the optional
#    dependency kaio-<platform> from the tarball and never looks it up.
APP="$WORK/app-native"
mkdir "$APP"
printf '{ "name": "kaio-pack-test", "version": "0.0.0", "private": true }\n' >"$APP/package.json"
(cd "$APP" && npm install "${NPM_OFFLINE[@]}" "$ROOT_TGZ" "$PLATFORM_TGZ" >/dev/null) || die 'npm install of both tarballs failed'
[ -f "$APP/node_modules/kaio-$PLATFORM/$BINARY" ] || die "node_modules/kaio-$PLATFORM/$BINARY was not installed"
[ ! -e "$APP/node_modules/kaio/$BINARY" ] || die "the root package carries $BINARY"
write_checks "$APP"
run_checks "$APP" "$NATIVE"
if [ -x "$ROOT/node_modules/.bin/tsc" ]; then
  (cd "$APP" && "$ROOT/node_modules/.bin/tsc" -p tsconfig.json) || die "the package's typings do not compile"
  say 'typings ok: strict NodeNext project compiles against the installed kaio'
else
  say 'typings not checked: no tsc in node_modules'
fi

# 4. Without it (a platform with no binary, or --omit=optional): the js backend.
APP="$WORK/app-js"
mkdir "$APP"
printf '{ "name": "kaio-pack-test-js", "version": "0.0.0", "private": true }\n' >"$APP/package.json"
(cd "$APP" && npm install "${NPM_OFFLINE[@]}" --omit=optional "$ROOT_TGZ" >/dev/null) || die 'npm install --omit=optional failed'
for d in "$APP"/node_modules/kaio-*; do [ ! -e "$d" ] || die "an optional platform package was installed: $d"; done
write_checks "$APP"
run_checks "$APP" js

say "passed: native ($NATIVE) and js installs work"
