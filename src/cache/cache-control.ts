/**
 * Cache-Control parsing (RFC 9111 §5.2), tolerant the way §4.2.1 and §5.2 ask: directive
 * names are case-insensitive, whitespace around tokens is ignored, values may be quoted
 * strings (commas inside quotes do not split), and a repeated directive keeps its first
 * occurrence. Unknown directives are kept so callers can look for extensions.
 */

export type Directives = ReadonlyMap<string, string | true>

const EMPTY: Directives = new Map()

export function parseCacheControl (value: string | readonly string[] | undefined): Directives {
  if (value === undefined) return EMPTY
  const text = typeof value === 'string' ? value : value.join(',')
  if (text.trim() === '') return EMPTY
  const out = new Map<string, string | true>()
  let i = 0
  const n = text.length
  while (i < n) {
    // skip separators and whitespace
    while (i < n && (text[i] === ',' || text[i] === ' ' || text[i] === '\t')) i++
    if (i >= n) break
    let name = ''
    while (i < n && text[i] !== '=' && text[i] !== ',') name += text[i++]
    name = name.trim().toLowerCase()
    let val: string | true = true
    if (text[i] === '=') {
      i++
      while (i < n && (text[i] === ' ' || text[i] === '\t')) i++
      if (text[i] === '"') {
        i++
        let v = ''
        while (i < n && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < n) i++
          v += text[i++]
        }
        i++ // closing quote
        while (i < n && text[i] !== ',') i++
        val = v
      } else {
        let v = ''
        while (i < n && text[i] !== ',') v += text[i++]
        val = v.trim()
      }
    }
    if (name !== '' && !out.has(name)) out.set(name, val)
  }
  return out
}

/**
 * A delta-seconds directive value (RFC 9111 §1.2.2): undefined when absent, 'invalid' when
 * present but not a non-negative integer. Values beyond 2^31 are clamped as §1.2.2 asks.
 */
export function deltaSeconds (d: Directives, name: string): number | 'invalid' | undefined {
  const v = d.get(name)
  if (v === undefined) return undefined
  if (v === true || !/^\d+$/.test(v)) return 'invalid'
  return Math.min(Number(v), 2147483648)
}

export function has (d: Directives, name: string): boolean {
  return d.has(name)
}

/**
 * The directives that govern this cache's storage of a response: the first valid, non-empty
 * targeted field in target-list order (RFC 9213 §2.2: Cachegate-Cache-Control, then
 * CDN-Cache-Control), else Cache-Control. `targeted` tells the caller to ignore Expires.
 */
export function effectiveResponseDirectives (headers: Readonly<Record<string, string | readonly string[] | undefined>>): { directives: Directives, targeted: boolean } {
  for (const name of TARGETED_FIELDS) {
    const raw = headers[name]
    if (raw === undefined) continue
    const d = parseCacheControl(raw)
    if (d.size > 0) return { directives: d, targeted: true }
  }
  return { directives: parseCacheControl(headers['cache-control']), targeted: false }
}

/** RFC 9213 target list of this cache, most specific first. */
export const TARGETED_FIELDS = ['cachegate-cache-control', 'cdn-cache-control'] as const
