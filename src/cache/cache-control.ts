/**
 * Cache-Control parsing (RFC 9111 §5.2), tolerant the way §4.2.1 and §5.2 ask: directive
 * names are case-insensitive, whitespace around tokens is ignored, values may be quoted
 * strings (commas inside quotes do not split), and a repeated directive keeps its first
 * occurrence. Unknown directives are kept so callers can look for extensions.
 */
import { parseDictionary } from './structured-fields.ts'

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

/** This cache's device token in Surrogate-Capability and Surrogate-Control targets (W3C Edge Architecture). */
export const SURROGATE_DEVICE = 'cachegate'
/** Sent to the origin on every fetch for the cache: this gateway honours Surrogate-Control. */
export const SURROGATE_CAPABILITY = `${SURROGATE_DEVICE}="Surrogate/1.0"`

/**
 * The directives that govern this cache's storage of a response: the first valid, non-empty
 * targeted field in target-list order (RFC 9213 §2.2: Cachegate-Cache-Control, then
 * CDN-Cache-Control, then the older Surrogate-Control), else Cache-Control. `targeted` tells
 * the caller to ignore Expires.
 */
export function effectiveResponseDirectives (headers: Readonly<Record<string, string | readonly string[] | undefined>>): { directives: Directives, targeted: boolean } {
  for (const name of TARGETED_FIELDS) {
    const raw = headers[name]
    if (raw === undefined) continue
    const text = typeof raw === 'string' ? raw : raw.join(', ')
    const d = name === 'surrogate-control' ? parseSurrogateControl(text) : parseTargetedField(text)
    if (d !== undefined && d.size > 0) return { directives: d, targeted: true }
  }
  return { directives: parseCacheControl(headers['cache-control']), targeted: false }
}

/** RFC 9213 target list of this cache, most specific first; Surrogate-Control is not RFC 9213 but is read the same way, last. */
export const TARGETED_FIELDS = ['cachegate-cache-control', 'cdn-cache-control', 'surrogate-control'] as const

/** Directives whose value must be a non-negative Integer in a targeted field (RFC 9213 §2.1). */
const INTEGER_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error'])
/** Directives that take no value: only a Boolean is valid. */
const FLAG_DIRECTIVES = new Set(['no-store', 'must-revalidate', 'proxy-revalidate', 'public', 'immutable', 'no-transform', 'must-understand', 'only-if-cached'])
/** Directives that are a flag or list field names: a Boolean, a String or an Inner List of them. */
const FIELD_LIST_DIRECTIVES = new Set(['no-cache', 'private'])

/**
 * RFC 9213 §2.1: a targeted field is an RFC 8941 Dictionary. A field that does not parse, or
 * whose known directives have values of the wrong type (max-age=3.5, max-age="60",
 * no-store=1), is invalid as a whole: undefined, and the caller falls back to the next field
 * or Cache-Control. Parameters are ignored; a Boolean false directive is absent.
 */
export function parseTargetedField (text: string): Directives | undefined {
  const dict = parseDictionary(text)
  if (dict === undefined) return undefined
  const out = new Map<string, string | true>()
  for (const [name, member] of dict) {
    if (INTEGER_DIRECTIVES.has(name)) {
      if (member.type !== 'integer' || member.value < 0) return undefined
      out.set(name, String(member.value))
    } else if (FLAG_DIRECTIVES.has(name)) {
      if (member.type !== 'boolean') return undefined
      if (member.value) out.set(name, true)
    } else if (FIELD_LIST_DIRECTIVES.has(name)) {
      if (member.type === 'boolean') {
        if (member.value) out.set(name, true)
      } else if (member.type === 'string' || member.type === 'token') {
        out.set(name, member.value)
      } else if (member.type === 'inner-list' && member.value.every((i) => i.type === 'string' || i.type === 'token')) {
        out.set(name, member.value.map((i) => String(i.value)).join(', '))
      } else {
        return undefined
      }
    } else if (member.type === 'boolean') {
      // An unknown extension: kept so callers can look for it, as in Cache-Control.
      if (member.value) out.set(name, true)
    } else {
      out.set(name, member.type === 'inner-list' ? member.value.map((i) => String(i.value)).join(', ') : String(member.value))
    }
  }
  return out
}

/**
 * Surrogate-Control (W3C Edge Architecture): Cache-Control syntax, read as tolerantly, where a
 * directive may end in `;device` to target one surrogate. Directives targeted at another device
 * are ignored; those targeted at this one win over untargeted ones.
 */
export function parseSurrogateControl (text: string): Directives {
  const mine = new Map<string, string | true>()
  const general = new Map<string, string | true>()
  for (const part of splitOutsideQuotes(text)) {
    const semi = lastTargetSeparator(part)
    const target = semi === -1 ? undefined : part.slice(semi + 1).trim().toLowerCase()
    const body = semi === -1 ? part : part.slice(0, semi)
    const parsed = parseCacheControl(body)
    const into = target === undefined ? general : target === SURROGATE_DEVICE ? mine : undefined
    if (into === undefined) continue
    for (const [name, value] of parsed) if (!into.has(name)) into.set(name, value)
  }
  for (const [name, value] of general) if (!mine.has(name)) mine.set(name, value)
  return mine
}

/** Splits at commas that are not inside a quoted string. */
function splitOutsideQuotes (text: string): string[] {
  const parts: string[] = []
  let quoted = false
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '\\' && quoted) i++
    else if (c === '"') quoted = !quoted
    else if (c === ',' && !quoted) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

/** The position of a `;device` suffix outside quotes, or -1. */
function lastTargetSeparator (part: string): number {
  let quoted = false
  let at = -1
  for (let i = 0; i < part.length; i++) {
    const c = part[i]
    if (c === '\\' && quoted) i++
    else if (c === '"') quoted = !quoted
    else if (c === ';' && !quoted) at = i
  }
  return at
}
