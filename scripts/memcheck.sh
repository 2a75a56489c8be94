#!/usr/bin/env bash
# Memory safety check (issue 6, item 5): runs kaio-core's Rust tests and a short JS workload
# on every backend under valgrind memcheck. Fails on invalid reads/writes (and other memcheck
# errors) or definite leaks whose stack has a kaio frame; node's own noise is ignored by
# keeping only errors that mention kaio (the binding is a debug build, so frames have names).
# Usage: scripts/memcheck.sh   (env: KAIO_MEMCHECK_OPS=300 per backend, KEEP_LOGS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if ! command -v valgrind >/dev/null; then
  echo "valgrind missing: apt-get install -y valgrind" >&2
  exit 2
fi

OUT=$(mktemp -d /tmp/kaio-memcheck.XXXXXX)
trap '[ -n "${KEEP_LOGS:-}" ] || rm -rf "$OUT"' EXIT
VG=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --num-callers=40 --trace-children=no
    --suppressions="$ROOT/scripts/memcheck.supp")
status=0

# Counts memcheck error blocks (invalid access, uninitialised use, bad free, definite leak)
# whose stack mentions kaio. Blocks are separated by lines holding only "==PID==".
kaio_errors() {
  awk '
    /^==[0-9]+== *$/ { if (blk ~ /kaio/ && blk ~ /(Invalid (read|write|free)|uninitialised|definitely lost|Mismatched free|overlap|Syscall param)/) { n++; print blk > "/dev/stderr" } blk = ""; next }
    { blk = blk "\n" $0 }
    END { if (blk ~ /kaio/ && blk ~ /(Invalid (read|write|free)|uninitialised|definitely lost|Mismatched free|overlap|Syscall param)/) { n++; print blk > "/dev/stderr" } print n + 0 }
  ' "$1"
}

# Valgrind runs one thread at a time: a pool worker spinning for its next job (kaio-core's
# pool, 100 µs) would only hold up the thread that is to give it one.
export KAIO_POOL_SPIN_US=0

echo "== 1/2: cargo test -p kaio-core under valgrind"
mapfile -t TESTS < <(cargo test -p kaio-core --no-run --message-format=json 2>/dev/null \
  | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      for (const line of s.split("\n")) {
        try { const m = JSON.parse(line); if (m.executable && m.profile && m.profile.test) console.log(m.executable) } catch {}
      }
    })')
if [ "${#TESTS[@]}" -eq 0 ]; then echo "no test binaries built" >&2; exit 2; fi
for bin in "${TESTS[@]}"; do
  log="$OUT/$(basename "$bin").log"
  t0=$(date +%s)
  # The RWF_NOWAIT hand-off tests of tests/engine.rs need a cold page to stay cold between
  # the fadvise and the submit, which valgrind's 20-50x slowdown breaks, and their large
  # pattern buffers take over 10 minutes under valgrind. The pool they hand off to is the
  # thread backend's, which the other tests run here.
  # Valgrind has no openat2 (syscall 437: "unhandled", ENOSYS), which every test of the cached
  # fast path (src/sys/cached.rs) starts with; under valgrind that path answers ENOSYS and the
  # fs layer turns it off, which the JS workload below runs through. The tests run natively in
  # `cargo test`.
  skip=()
  case "$(basename "$bin")" in
    engine-*) skip=(--skip pool --skip cold --skip nowait --skip cached_prefix --skip buffered_writes_land) ;;
    kaio_core-*) skip=(--skip sys::cached) ;;
  esac
  # Rust test binaries are all kaio code: any memcheck error counts (error-exitcode).
  if ! "${VG[@]}" --error-exitcode=99 --log-file="$log" "$bin" --test-threads=2 -q "${skip[@]}" >"$log.out" 2>&1; then
    echo "FAIL: $(basename "$bin") (valgrind errors or test failure); log: $log" >&2
    grep -E "ERROR SUMMARY|definitely lost|Invalid" "$log" >&2 || true
    tail -20 "$log.out" >&2 || true
    status=1; KEEP_LOGS=1
  else
    echo "ok: $(basename "$bin") ($(( $(date +%s) - t0 )) s): $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$log")"
  fi
done

echo "== 2/2: JS workload under valgrind (debug binding)"
cargo build -p kaio-node --quiet
SO=$(ls -t "$ROOT"/target/debug/libkaio_node.so | head -1)
cp "$SO" "$OUT/kaio-debug.node"
log="$OUT/node.log"
t0=$(date +%s)
set +e
NAPI_RS_NATIVE_LIBRARY_PATH="$OUT/kaio-debug.node" KAIO_MEMCHECK_OPS="${KAIO_MEMCHECK_OPS:-300}" \
  "${VG[@]}" --smc-check=all-non-file --log-file="$log" \
  node --expose-gc "$ROOT/__test__/fixtures/memcheck-workload.cjs" >"$OUT/node.out" 2>&1
rc=$?
set -e
n=$(kaio_errors "$log" 2>"$OUT/kaio-errors.txt")
echo "node workload: exit $rc, $(( $(date +%s) - t0 )) s, $(cat "$OUT/node.out" | tail -1); memcheck errors with kaio frames: $n"
if [ "$rc" -ne 0 ] || [ "$n" -ne 0 ]; then
  cat "$OUT/kaio-errors.txt" >&2
  tail -20 "$OUT/node.out" >&2
  status=1; KEEP_LOGS=1
fi
if ! grep -q "kaio" "$log" && ! grep -q '"ok":true' "$OUT/node.out"; then
  echo "the workload did not run" >&2; status=1
fi

[ "$status" -eq 0 ] && echo "memcheck: PASS" || echo "memcheck: FAIL (logs in $OUT)"
exit $status
