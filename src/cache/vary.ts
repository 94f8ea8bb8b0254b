/**
 * Vary (RFC 9111 §4.1): which request header values select a stored variant, normalized so
 * that equivalent requests find the same variant and different ones never do.
 */
import { createHash } from 'node:crypto'
import type { IncomingHeaders } from './headers.ts'
import { single } from './headers.ts'
import { NO_VARIANT, type VariantId } from './key.ts'

/** Field names in a Vary header, lower-case, deduplicated, sorted; '*' when it varies on everything. */
export function parseVary (value: string | readonly string[] | undefined): string[] | '*' {
  const text = single(value)
  if (text === undefined) return []
  const names = new Set<string>()
  for (const part of text.split(',')) {
    const name = part.trim().toLowerCase()
    if (name === '*') return '*'
    if (name !== '') names.add(name)
  }
  return [...names].sort()
}

/** Headers whose values are lists of case-insensitive tokens with q-values. */
const TOKEN_LISTS = new Set(['accept', 'accept-encoding', 'accept-language', 'accept-charset'])

/**
 * A qvalue (RFC 9110 §12.4.2) as a number, or undefined when it is not one. Only a valid
 * qvalue is read: Number() would turn "" into 0 and "0x1" into 1, merging invalid values with
 * valid ones an origin may treat apart.
 */
export function qvalue (raw: string): number | undefined {
  return /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(raw) ? Number(raw) : undefined
}

/**
 * The items of a `token;param;param, ...` list (Accept, Accept-Encoding, Accept-Language,
 * Accept-Charset; RFC 9110 §5.6.1, §12.4.2), each part trimmed and lower-cased, every item
 * as written (empty ones too): the Vary normalization and language selection
 * (cache/language.ts) read these fields alike and differ only in what they accept.
 */
export function * listItems (value: string): Generator<{ token: string, params: string[] }> {
  for (const item of value.split(',')) {
    const [token = '', ...params] = item.split(';').map((part) => part.trim().toLowerCase())
    yield { token, params }
  }
}

/**
 * Normalizes a list of `token;param=value;q=0.5` items (Accept, Accept-Encoding,
 * Accept-Language): lower-case, whitespace removed, q=1 dropped (it is the default),
 * q written without trailing zeros, items in canonical (sorted) order.
 */
function normalizeTokenList (value: string): string {
  const items: string[] = []
  for (const item of listItems(value)) {
    const token = foldEquals(item.token)
    if (token === '') continue
    const params: string[] = []
    for (const p of item.params.map(foldEquals)) {
      if (p === '') continue
      if (p.startsWith('q=')) {
        const q = qvalue(p.slice(2))
        if (q === undefined) {
          params.push(p)
        } else if (q !== 1) {
          params.push(`q=${q}`)
        }
      } else {
        params.push(p)
      }
    }
    items.push([token, ...params].join(';'))
  }
  return [...new Set(items)].sort().join(',')
}

/** `q = 0.5` as `q=0.5`: whitespace around a parameter's first `=` does not make another variant. */
function foldEquals (part: string): string {
  return part.replace(/\s*=\s*/, '=')
}

/**
 * One request header's value as it takes part in a variant. Absent (null) differs from empty ('').
 * Whitespace runs fold to one space everywhere; token-list headers are also case-folded and
 * put in canonical order. Other values keep their case: they may name a tenant or a user.
 */
export function normalizeVaryValue (name: string, value: string | readonly string[] | undefined): string | null {
  const text = single(value)
  if (text === undefined) return null
  if (TOKEN_LISTS.has(name)) return normalizeTokenList(text)
  return text.trim().replace(/[ \t]+/g, ' ').replace(/\s*,\s*/g, ', ')
}

/**
 * The `name=value` pairs of one Cookie field line (RFC 6265 §4.2.1), names and values trimmed;
 * a part without `=` has a null value (it names nothing a key could select, but it is a cookie
 * the request carried).
 */
function * cookiePairs (text: string): Generator<[string, string | null]> {
  for (const part of text.split(/;\s*/)) {
    const eq = part.indexOf('=')
    yield eq === -1 ? [part.trim(), null] : [part.slice(0, eq).trim(), part.slice(eq + 1).trim()]
  }
}

/** The value of one cookie in a Cookie header, or null. */
export function cookieValue (header: string | readonly string[] | undefined, name: string): string | null {
  const text = single(header)
  if (text === undefined) return null
  for (const [n, value] of cookiePairs(text)) if (value !== null && n === name) return value
  return null
}

/** The names of the cookies in every Cookie field line. */
export function cookieNames (header: string | readonly string[]): string[] {
  const out: string[] = []
  for (const text of typeof header === 'string' ? [header] : header) {
    for (const [name] of cookiePairs(text)) if (name !== '') out.push(name)
  }
  return out
}

/** What selects a variant: route key headers and cookies, plus the response's Vary names. */
export interface VariantSpec {
  /** Request header names (lower-case): route key headers and Vary names together. */
  headers: readonly string[]
  /** Cookie names from the route's key options. */
  cookies: readonly string[]
}

/**
 * The name that marks a language alias (cache/language.ts): its variant values are those of a
 * request naming only its language, plus this name with that language. Variant values are
 * named by request fields, whose names are tokens without `:` (RFC 9110 §5.1), and by
 * `cookie:` and a key cookie's name, and variantValues never reads this one from a request
 * (even one a Vary names); so no request's values hold it with a value, no request selects an
 * alias as its own variant, and an alias never takes the slot of a response the origin gave to
 * a request. It names no request field: stores leave it out of the URL's Vary record
 * (store.ts varyNames).
 */
export const LANGUAGE_ALIAS = 'alias:content-language'

/**
 * The request's normalized values for a variant spec; cookies appear as `cookie:<name>`. The
 * language alias's mark is never read from the request (a Vary naming it selects by absence).
 */
export function variantValues (spec: VariantSpec, headers: IncomingHeaders): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const name of spec.headers) out[name] = name === LANGUAGE_ALIAS ? null : normalizeVaryValue(name, headers[name])
  for (const name of spec.cookies) out[`cookie:${name}`] = cookieValue(headers.cookie, name)
  return out
}

/** A short stable id for a set of variant values; '' when there are none. */
export function variantId (values: Readonly<Record<string, string | null>>): VariantId {
  const names = Object.keys(values).sort()
  if (names.length === 0) return NO_VARIANT
  const canonical = JSON.stringify(names.map((n) => [n, values[n]]))
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 22) as VariantId
}

/** True when a stored variant's values are exactly the request's (guards against id collisions). */
export function sameVariant (a: Readonly<Record<string, string | null>>, b: Readonly<Record<string, string | null>>): boolean {
  const ak = Object.keys(a)
  if (ak.length !== Object.keys(b).length) return false
  for (const k of ak) if (a[k] !== b[k] || !(k in b)) return false
  return true
}

/** Route key names and Vary names merged into one spec (sorted, deduplicated). */
export function mergeSpec (routeHeaders: readonly string[], routeCookies: readonly string[], vary: readonly string[]): VariantSpec {
  return {
    headers: [...new Set([...routeHeaders, ...vary])].sort(),
    cookies: [...routeCookies].sort()
  }
}
