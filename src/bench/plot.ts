// `--plot FILE`: IOPS and p99 latency by queue depth, one line per engine, one row of two
// panels per (mode, workload). Hand-written SVG (log scales), or HTML wrapping it inline.
import type { CellResult } from './report'
import { sectionLabel, si } from './report'
import type { CellMode, CellWorkload } from './report'
import type { EngineName } from './options'

const COLORS: Record<EngineName, string> = {
  uring: '#8c564b',
  linux: '#d62728',
  'linux-poll': '#e377c2',
  thread: '#ff7f0e',
  js: '#9467bd',
  node: '#1f77b4',
  kaio: '#d62728',
  sync: '#17becf',
  fio: '#2ca02c',
  'fio-uring': '#bcbd22',
  'fio-psync': '#7f7f7f',
}

const PANEL_W = 440
const PANEL_H = 260
const M = { left: 64, right: 16, top: 30, bottom: 40 }
const LEGEND_H = 56

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

interface Series {
  engine: EngineName
  label: string
  points: { depth: number; value: number }[]
}

/** A tick label: 2000 -> '2k', 1e6 -> '1M', 0.5 -> '0.5'. */
function tick(v: number): string {
  return si(v).replace(/\.0+(?=[kM]?$)/, '').replace(/(\.\d*?)0+(?=[kM]?$)/, '$1')
}

function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = []
  const decades = Math.log10(hi / lo)
  const steps = decades <= 2 ? [1, 2, 5] : [1]
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const s of steps) {
      const v = s * 10 ** e
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(v)
    }
  }
  return ticks
}

function panel(x0: number, y0: number, title: string, unit: string, depths: number[], series: Series[]): string {
  const parts: string[] = []
  const w = PANEL_W - M.left - M.right
  const h = PANEL_H - M.top - M.bottom
  const px = x0 + M.left
  const py = y0 + M.top
  parts.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 + 18}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`)
  parts.push(`<rect x="${px}" y="${py}" width="${w}" height="${h}" fill="#fafafa" stroke="#999"/>`)
  const values = series.flatMap((s) => s.points.map((p) => p.value)).filter((v) => Number.isFinite(v) && v > 0)
  if (values.length === 0) {
    parts.push(`<text x="${px + w / 2}" y="${py + h / 2}" text-anchor="middle" fill="#777">no data</text>`)
    return parts.join('\n')
  }
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values)))
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)) + 1e-9)
  const yOf = (v: number): number => py + h - (Math.log10(v / lo) / Math.log10(hi / lo)) * h
  const xOf = (d: number): number => {
    const i = depths.indexOf(d)
    return depths.length === 1 ? px + w / 2 : px + 20 + (i * (w - 40)) / (depths.length - 1)
  }
  for (const t of logTicks(lo, hi)) {
    const y = yOf(t).toFixed(1)
    parts.push(`<line x1="${px}" x2="${px + w}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`)
    parts.push(`<text x="${px - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11">${esc(tick(t))}</text>`)
  }
  for (const d of depths) {
    const x = xOf(d).toFixed(1)
    parts.push(`<line x1="${x}" x2="${x}" y1="${py + h}" y2="${py + h + 4}" stroke="#999"/>`)
    parts.push(`<text x="${x}" y="${py + h + 16}" text-anchor="middle" font-size="11">${d}</text>`)
  }
  parts.push(`<text x="${px + w / 2}" y="${py + h + 32}" text-anchor="middle" font-size="11">queue depth</text>`)
  parts.push(
    `<text x="${x0 + 14}" y="${py + h / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 ${x0 + 14} ${py + h / 2})">${esc(unit)}</text>`,
  )
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p.value) && p.value > 0)
    if (pts.length === 0) continue
    const c = COLORS[s.engine]
    if (pts.length > 1) {
      const d = pts.map((p) => `${xOf(p.depth).toFixed(1)},${yOf(p.value).toFixed(1)}`).join(' ')
      parts.push(`<polyline points="${d}" fill="none" stroke="${c}" stroke-width="2"/>`)
    }
    for (const p of pts) {
      parts.push(
        `<circle cx="${xOf(p.depth).toFixed(1)}" cy="${yOf(p.value).toFixed(1)}" r="3.5" fill="${c}"><title>${esc(`${s.label} d${p.depth}: ${si(p.value)} ${unit}`)}</title></circle>`,
      )
    }
  }
  return parts.join('\n')
}

/** An SVG document charting `results`. */
export function renderSvg(results: CellResult[], subtitle: string): string {
  const sections: { mode: CellMode; workload: CellWorkload; bs: number }[] = []
  for (const r of results) {
    if (!sections.some((s) => s.mode === r.mode && s.workload === r.workload)) sections.push({ mode: r.mode, workload: r.workload, bs: r.bs })
  }
  const engines: { engine: EngineName; label: string }[] = []
  for (const r of results) if (!engines.some((e) => e.engine === r.engine)) engines.push({ engine: r.engine, label: r.label })
  const width = PANEL_W * 2
  const height = LEGEND_H + Math.max(1, sections.length) * PANEL_H
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="20" font-size="14" font-weight="bold">kaio bench</text>`,
    `<text x="112" y="20" font-size="11" fill="#555">${esc(subtitle)}</text>`,
  ]
  engines.forEach((e, i) => {
    const x = 12 + (i % 6) * 140
    const y = 40 + Math.floor(i / 6) * 16
    parts.push(`<rect x="${x}" y="${y - 8}" width="14" height="4" fill="${COLORS[e.engine]}"/>`)
    parts.push(`<text x="${x + 20}" y="${y - 2}" font-size="11">${esc(e.label)}</text>`)
  })
  sections.forEach((s, row) => {
    const y0 = LEGEND_H + row * PANEL_H
    const cell = results.filter((r) => r.mode === s.mode && r.workload === s.workload)
    const depths = [...new Set(cell.map((r) => r.depth))].sort((a, b) => a - b)
    const seriesOf = (pick: (r: CellResult) => number): Series[] =>
      engines.map((e) => ({
        engine: e.engine,
        label: e.label,
        points: cell.filter((r) => r.engine === e.engine && !r.error).map((r) => ({ depth: r.depth, value: pick(r) })),
      }))
    const name = sectionLabel(s, ' ')
    parts.push(panel(0, y0, `${name}: IOPS`, 'IOPS', depths, seriesOf((r) => r.iops)))
    parts.push(panel(PANEL_W, y0, `${name}: p99 latency`, 'µs', depths, seriesOf((r) => r.p99LatUs)))
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

/** The chart for `file`: SVG, or a self-contained HTML page when the name ends in .html/.htm. */
export function renderPlot(file: string, results: CellResult[], subtitle: string): string {
  const svg = renderSvg(results, subtitle)
  if (!/\.html?$/i.test(file)) return `<?xml version="1.0" encoding="UTF-8"?>\n${svg}`
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>kaio bench</title></head>\n<body style="margin:16px">\n${svg}</body></html>\n`
}
