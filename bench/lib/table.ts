/**
 * A result table printed to the terminal (aligned text) and written as Markdown.
 */

export interface Table {
  title: string
  columns: string[]
  /** Columns aligned right (numbers). */
  numeric?: boolean[]
  rows: string[][]
  /** Lines under the table: settings, verification, caveats. */
  notes: string[]
}

export function renderText (t: Table): string {
  const widths = t.columns.map((c, i) => Math.max(c.length, ...t.rows.map((r) => (r[i] ?? '').length)))
  const cell = (v: string, i: number): string => (t.numeric?.[i] === true ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0))
  const line = (cells: string[]): string => cells.map(cell).join('  ').trimEnd()
  return [
    t.title,
    '',
    line(t.columns),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...t.rows.map(line),
    '',
    ...t.notes.map((n) => `  ${n}`)
  ].join('\n') + '\n'
}

export function renderMarkdown (t: Table): string {
  const esc = (v: string): string => v.replace(/\|/g, '\\|')
  const align = t.columns.map((_c, i) => (t.numeric?.[i] === true ? '---:' : ':---'))
  return [
    `### ${t.title}`,
    '',
    `| ${t.columns.map(esc).join(' | ')} |`,
    `| ${align.join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
    '',
    ...t.notes.map((n) => `- ${n}`)
  ].join('\n') + '\n'
}

export const fmt = {
  int: (n: number): string => Math.round(n).toLocaleString('en-US'),
  ms: (n: number): string => (n < 10 ? n.toFixed(2) : n.toFixed(1)),
  ratio: (n: number): string => `${n.toFixed(2)}×`,
  pct: (n: number | undefined): string => (n === undefined ? 'n/a' : `${Math.round(n * 100)}%`)
}

/** A positive integer from the environment, else the default. */
export function envInt (name: string, fallback: number, min = 1, max = 1_000_000): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n < min || n > max) throw new RangeError(`${name} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`)
  return Math.round(n)
}
