#!/usr/bin/env bash
# Where a 4 KiB O_DIRECT random read's time goes at depth 32, kaio uring against fio
# io_uring: block-layer issues (block:block_rq_issue) and CQE posts (io_uring:io_uring_complete)
# traced with `perf record -a` over one 2 s run each, on the same 1 GiB file. By Little's law,
# the mean number of requests issued to the device and not yet posted to the CQ, divided by
# the rate, is the time from issue to CQE (device time, plus, with DEFER_TASKRUN, the wait
# until the submitting thread enters the kernel to run the completion); the rest of the 32 are
# on the application's side (CQE posted, next read not yet issued).
#   npm run build && bash benchmark/ring-wait.sh [DIR]      (root; needs perf, fio, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.}
FILE="$DIR/.kaio-ring-wait.tmp"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT" "$FILE"' EXIT
fio --name=fill --filename="$FILE" --size=1G --rw=write --bs=1M --direct=1 >/dev/null
EVENTS=block:block_rq_issue,io_uring:io_uring_complete

cat > "$OUT/kaio.js" <<'JS'
const fs = require('fs')
const { Context, allocAligned } = require(process.cwd() + '/index.js')
const [file, depth] = [process.argv[2], 32]
const O_DIRECT = 0o40000, BS = 4096, BLOCKS = (1 << 30) / BS
;(async () => {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | O_DIRECT)
  const ctx = new Context({ implementation: 'uring', maxRequests: 128 })
  let n = 0, seed = (Math.random() * 0xffffffff) | 1
  const end = performance.now() + 2000
  await Promise.all(Array.from({ length: depth }, async () => {
    const buf = allocAligned(BS)
    while (performance.now() < end) {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5
      await ctx.readInto(buf, fd, ((seed >>> 0) % BLOCKS) * BS)
      n++
    }
  }))
  await ctx.close()
  fs.closeSync(fd)
  console.log(`kaio uring: ${(n / 2000).toFixed(1)}k reads/s`)
})()
JS

perf record -q -e "$EVENTS" -a -o "$OUT/kaio.data" -- node "$OUT/kaio.js" "$FILE"
perf record -q -e "$EVENTS" -a -o "$OUT/fio.data" -- fio --name=c --filename="$FILE" --size=1G \
  --rw=randread --bs=4k --ioengine=io_uring --iodepth=32 --direct=1 --runtime=2 --time_based \
  --norandommap --randrepeat=0 | grep -o 'IOPS=[^,]*' | sed 's/^/fio io_uring: /'
for who in kaio fio; do
  perf script -i "$OUT/$who.data" 2>/dev/null | python3 -c '
import re, sys
ev = []
for line in sys.stdin:
    m = re.search(r"\s(\d+\.\d+):\s+(\S+):", line)
    if not m: continue
    if "block_rq_issue" in m.group(2) and " RS 4096 " in line: ev.append((float(m.group(1)), 1))
    elif "io_uring_complete" in m.group(2): ev.append((float(m.group(1)), -1))
ev.sort()
t0, t1 = ev[0][0], ev[-1][0]
a, b = t0 + (t1 - t0) * 0.1, t1 - (t1 - t0) * 0.1   # the middle 80%
x, last, area, issued = 0, None, 0.0, 0
for t, d in ev:
    if last is not None and a <= t <= b: area += x * (t - last)
    last = t
    x += d
    if d > 0 and a <= t <= b: issued += 1
rate, depth = issued / (b - a), area / (b - a)
print(f"{sys.argv[1]}: {rate/1000:.1f}k issues/s; issued and not yet in the CQ: {depth:.1f} on average, {depth/rate*1e6:.0f} us each; on the application side: {32-depth:.1f}")
' "$who"
done
