// A log-linear latency histogram (HDR style, 1/32 to 1/64 relative precision) over nanoseconds:
// constant memory and a few arithmetic operations per sample, so recording does not disturb
// a run at hundreds of thousands of operations per second.

const SUB_BITS = 6
const SUB = 1 << SUB_BITS
const MAX_EXP = 40 // 2^46 ns, about 19 hours: far beyond any latency here

export class Histogram {
  readonly #counts = new Float64Array((MAX_EXP + 1) * SUB)
  count = 0
  sum = 0
  max = 0

  /** Records one latency in nanoseconds. */
  record(ns: number): void {
    const v = ns < 0 ? 0 : Math.floor(ns)
    let idx: number
    if (v < SUB) idx = v
    else {
      // exponent e >= 1: bucket width 2^e, SUB/2 buckets per exponent above the first row.
      const bits = 31 - Math.clz32(Math.min(v / SUB, 0x7fffffff)) // floor(log2(v / SUB))
      const e = Math.min(bits + 1, MAX_EXP)
      idx = e * SUB + Math.min(Math.floor(v / 2 ** e), SUB - 1)
    }
    this.#counts[idx]!++
    this.count++
    this.sum += v
    if (v > this.max) this.max = v
  }

  /** The value (ns) below which `q` (0..1) of the samples fall; upper edge of the bucket. */
  quantile(q: number): number {
    if (this.count === 0) return NaN
    const target = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    const c = this.#counts
    for (let i = 0; i < c.length; i++) {
      seen += c[i]!
      if (seen >= target) {
        const e = Math.floor(i / SUB)
        const m = i % SUB
        const upper = e === 0 ? m : (m + 1) * 2 ** e - 1
        return Math.min(upper, this.max)
      }
    }
    return this.max
  }

  mean(): number {
    return this.count === 0 ? NaN : this.sum / this.count
  }
}
