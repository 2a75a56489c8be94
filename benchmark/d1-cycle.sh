#!/usr/bin/env bash
# Where a 4 KiB O_DIRECT random read's time goes at depth 1, kaio uring against fio io_uring:
# every system call of the reading thread and every CQE post, traced with `perf record -a`
# (raw_syscalls and io_uring tracepoints) over one 2 s run each, on the same 1 GiB file. Each
# read is one cycle, from the io_uring_enter that submits it to the one that submits the next,
# cut where the cycle changes hands:
#   kaio: submit (the submitting io_uring_enter), wait (until epoll_wait returns for the
#         completion), collect (eventfd read and io_uring_enter(GETEVENTS) until the CQE is
#         posted), js (CQE to the next submit: the promise settles, the next read is made and
#         checked, the flush microtask runs); plus the empty wake-ups per read (an eventfd
#         signal from the CQE post itself, handled while the device works).
#   fio:  submit (io_uring_enter submitting), wait (io_uring_enter waiting, until the CQE),
#         user (CQE to the next submit).
# Medians in µs.
#   npm run build && bash benchmark/d1-cycle.sh [DIR]      (root; needs perf, fio, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.}
FILE="$DIR/.kaio-d1-cycle.tmp"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT" "$FILE"' EXIT
fio --name=fill --filename="$FILE" --size=1G --rw=write --bs=1M --direct=1 >/dev/null
EVENTS=raw_syscalls:sys_enter,raw_syscalls:sys_exit,io_uring:io_uring_complete

cat > "$OUT/kaio.js" <<'JS'
const fs = require('fs')
const { Context, allocAligned } = require(process.cwd() + '/index.js')
const file = process.argv[2]
const O_DIRECT = 0o40000, BS = 4096, BLOCKS = (1 << 30) / BS
;(async () => {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | O_DIRECT)
  const ctx = new Context({ implementation: 'uring' })
  const buf = allocAligned(BS)
  let n = 0, seed = (Math.random() * 0xffffffff) | 1
  const end = performance.now() + 2000
  while (performance.now() < end) {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5
    await ctx.readInto(buf, fd, ((seed >>> 0) % BLOCKS) * BS)
    n++
  }
  await ctx.close()
  fs.closeSync(fd)
  console.log(`kaio uring: ${(n / 2000).toFixed(1)}k reads/s`)
})()
JS

perf record -q -e "$EVENTS" -a -o "$OUT/kaio.data" -- node "$OUT/kaio.js" "$FILE"
perf record -q -e "$EVENTS" -a -o "$OUT/fio.data" -- fio --name=c --filename="$FILE" --size=1G \
  --rw=randread --bs=4k --ioengine=io_uring --iodepth=1 --direct=1 --runtime=2 --time_based \
  --norandommap --randrepeat=0 | grep -o 'IOPS=[^,]*' | sed 's/^/fio io_uring: /'
for who in kaio fio; do
  perf script -i "$OUT/$who.data" 2>/dev/null | python3 -c '
import re, statistics, sys
who = sys.argv[1]
ev = []
for line in sys.stdin:
    m = re.match(r"\s*(\S+)\s+(\d+)\s+\[\d+\]\s+(\d+\.\d+):\s+(\S+):\s+(.*)", line)
    if not m or m.group(1) not in ("node", "fio"): continue
    t, name, rest = float(m.group(3)) * 1e6, m.group(4), m.group(5)
    tid = m.group(2)
    if name == "raw_syscalls:sys_enter":
        nr = int(re.match(r"NR (\d+)", rest).group(1))
        args = re.search(r"\((.*)\)", rest).group(1).split(", ")
        ev.append((t, tid, "enter", nr, args))
    elif name == "raw_syscalls:sys_exit":
        nr, ret = re.match(r"NR (\d+) = (-?\d+)", rest).groups()
        ev.append((t, tid, "exit", int(nr), int(ret)))
    elif name == "io_uring:io_uring_complete":
        ev.append((t, tid, "cqe", 0, None))
# The reading thread: the one that posts CQEs.
tids = {}
for e in ev:
    if e[2] == "cqe": tids[e[1]] = tids.get(e[1], 0) + 1
main = max(tids, key=tids.get)
ev = [e for e in ev if e[1] == main]
URING, EPOLL = 426, 281
seg = {}
def add(k, v): seg.setdefault(k, []).append(v)
# A submitting enter: to_submit (second argument) > 0.
subs = [i for i, e in enumerate(ev) if e[2] == "enter" and e[3] == URING and int(e[4][1], 16) > 0]
empty = 0
for a, b in zip(subs, subs[1:]):
    cyc = ev[a:b + 1]
    exit_sub = next((e for e in cyc[1:] if e[2] == "exit" and e[3] == URING), None)
    cqes = [e for e in cyc if e[2] == "cqe"]
    if exit_sub is None or len(cqes) != 1: continue
    cqe = cqes[0]
    add("cycle", ev[b][0] - ev[a][0])
    add("submit", exit_sub[0] - ev[a][0])
    if who == "fio":
        add("wait", cqe[0] - exit_sub[0])
        add("user", ev[b][0] - cqe[0])
        continue
    # The epoll_wait that returned for the completion: the last one to return before the CQE.
    wakes = [e for e in cyc if e[2] == "exit" and e[3] == EPOLL and e[4] > 0 and e[0] < cqe[0]]
    if not wakes: continue
    empty += len(wakes) - 1
    add("wait", wakes[-1][0] - exit_sub[0])
    add("collect", cqe[0] - wakes[-1][0])
    add("js", ev[b][0] - cqe[0])
n = len(seg.get("cycle", []))
parts = ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in seg.items())
extra = f"; empty wake-ups per read {empty / n:.2f}" if who == "kaio" and n else ""
print(f"{who}: {n} reads; median us: {parts}{extra}")
' "$who"
done
