/**
 * Cache keys. The primary key is the normalized absolute URL (RFC 9111 §4.1, RFC 3986 §6);
 * the request that is forwarded to the origin is built from the same normalized form, so
 * what is stored under a key is exactly what the origin answered for that key.
 */

/** A normalized absolute URL; only normalizeRequestUrl makes one. */
export type CacheKey = string & { readonly __brand: 'CacheKey' }
/** Names one variant of a URL: '' when it does not vary. */
export type VariantId = string & { readonly __brand: 'VariantId' }

export const NO_VARIANT = '' as VariantId

export interface KeyInput {
  /** 'http' or 'https', as the client spoke to the gateway. */
  scheme: string
  /** The Host header (authority), possibly with a port. */
  host: string
  /** The request-target as received: path and query, possibly with a fragment. */
  target: string
}

export type NormalizedUrl =
  | {
    ok: true
    key: CacheKey
    /** Lower-case host without the default port. */
    authority: string
    /** Normalized path and (filtered) query: what is forwarded to the origin. */
    pathAndQuery: string
    path: string
  }
  | { ok: false, reason: string }

const UNRESERVED = /[A-Za-z0-9\-._~]/
const HEX = '0123456789ABCDEF'
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(\d{0,5}))?$/

/**
 * Normalizes percent-encoding (RFC 3986 §6.2.2): escapes of unreserved characters are decoded,
 * other escapes get upper-case hex, characters that may not appear raw are encoded as UTF-8.
 * Returns null on an invalid escape such as `%zz` or a truncated `%4`, and on a lone UTF-16
 * surrogate, which has no UTF-8 form (encoding it as U+FFFD would make it collide with U+FFFD).
 */
export function normalizeEncoding (part: string, keep: RegExp): string | null {
  let out = ''
  for (let i = 0; i < part.length; i++) {
    let ch = part[i] as string
    const unit = ch.charCodeAt(0)
    if (unit >= 0xd800 && unit <= 0xdfff) {
      // A character outside the BMP is two UTF-16 units; encode the pair, not each half.
      const low = part.charCodeAt(i + 1)
      if (unit > 0xdbff || !(low >= 0xdc00 && low <= 0xdfff)) return null
      ch = part.slice(i, i + 2)
      i++
    }
    if (ch === '%') {
      const hex = part.slice(i + 1, i + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null
      const decoded = String.fromCharCode(parseInt(hex, 16))
      out += UNRESERVED.test(decoded) ? decoded : '%' + hex.toUpperCase()
      i += 2
    } else if (keep.test(ch)) {
      out += ch
    } else {
      for (const byte of Buffer.from(ch, 'utf8')) {
        out += '%' + HEX[byte >> 4] + HEX[byte & 15]
      }
    }
  }
  return out
}

// RFC 3986 §3.3 pchar plus '/', and §3.4 query characters minus the separators we split on.
const PATH_CHARS = /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/
// '&' separates pairs and is never decoded into a pair; '=' is kept literal inside a pair.
const QUERY_CHARS = /[A-Za-z0-9\-._~!$'()*+,;:@/?=]/

/** RFC 3986 §5.2.4 remove_dot_segments. Empty segments (`//b`) are kept: they name other resources. */
export function removeDotSegments (path: string): string {
  const input = path.split('/')
  const out: string[] = []
  for (let i = 0; i < input.length; i++) {
    const seg = input[i] as string
    const last = i === input.length - 1
    if (seg === '.') {
      if (last) out.push('')
    } else if (seg === '..') {
      if (out.length > 1) out.pop()
      if (last) out.push('')
    } else {
      out.push(seg)
    }
  }
  const joined = out.join('/')
  return joined.startsWith('/') ? joined : '/' + joined
}

const matchers = new WeakMap<readonly string[], (name: string) => boolean>()
/** globMatcher, compiled once per list (a route's frozen `key.ignoreQuery`). */
export function ignoreMatcher (globs: readonly string[]): (name: string) => boolean {
  let m = matchers.get(globs)
  if (m === undefined) {
    m = globMatcher(globs)
    matchers.set(globs, m)
  }
  return m
}

/** Compiles `utm_*`-style globs into one matcher. */
export function globMatcher (globs: readonly string[]): (name: string) => boolean {
  if (globs.length === 0) return () => false
  const source = globs
    .map((g) => g.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*'))
    .join('|')
  const re = new RegExp(`^(?:${source})$`)
  return (name) => re.test(name)
}

function decodeName (raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '))
  } catch {
    return raw
  }
}

/**
 * A request target normalized as far as it can be without knowing the route: scheme, authority
 * and path final, query pairs normalized but not yet filtered or sorted. The route is chosen
 * from this `path`, and `keyOf` finishes the key from the same value, so routing, the key and
 * the forwarded path can never disagree (a raw `/x/../api` must not be routed as `/x`).
 */
export type NormalizedTarget =
  | {
    ok: true
    scheme: string
    /** Lower-case host without the default port. */
    authority: string
    /** Percent-encoding normalized, dot segments (also encoded ones) removed. */
    path: string
    params: ReadonlyArray<{ name: string, pair: string }>
  }
  | { ok: false, reason: string }

/** The route-independent part of the key: see NormalizedTarget. */
export function normalizeTarget (input: KeyInput): NormalizedTarget {
  const scheme = input.scheme.toLowerCase()
  if (scheme !== 'http' && scheme !== 'https') return { ok: false, reason: `unsupported scheme "${input.scheme}"` }
  const hostMatch = HOST_RE.exec(input.host)
  if (input.host === '' || hostMatch === null) return { ok: false, reason: 'invalid Host header' }
  let authority = input.host.toLowerCase()
  const port = hostMatch[1]
  if (port !== undefined) {
    const n = Number(port)
    if (n > 65535) return { ok: false, reason: 'invalid port in Host header' }
    const hostOnly = authority.slice(0, authority.length - port.length - 1)
    // RFC 3986 §6.2.3: an empty port, or the scheme's default, is omitted with its ':'.
    const isDefault = port === '' || (scheme === 'http' && n === 80) || (scheme === 'https' && n === 443)
    authority = isDefault ? hostOnly : `${hostOnly}:${n}`
  }

  let target = input.target
  const hash = target.indexOf('#')
  if (hash !== -1) target = target.slice(0, hash)
  if (!target.startsWith('/')) return { ok: false, reason: 'request target must start with "/"' }
  const q = target.indexOf('?')
  const rawPath = q === -1 ? target : target.slice(0, q)
  const rawQuery = q === -1 ? '' : target.slice(q + 1)

  const path = normalizePath(rawPath)
  if (path === null) return { ok: false, reason: 'invalid percent-encoding in path' }

  const params: Array<{ name: string, pair: string }> = []
  if (rawQuery !== '') {
    for (const rawPair of rawQuery.split('&')) {
      if (rawPair === '') continue
      const pair = normalizeEncoding(rawPair, QUERY_CHARS)
      if (pair === null) return { ok: false, reason: 'invalid percent-encoding in query' }
      const eq = pair.indexOf('=')
      params.push({ name: decodeName(eq === -1 ? pair : pair.slice(0, eq)), pair })
    }
  }
  return { ok: true, scheme, authority, path, params }
}

/**
 * A path in the form keys use: percent-encoding normalized first (so `%2e%2e` is `..`), then
 * RFC 3986 §5.2.4 dot segments removed. Null on invalid percent-encoding.
 */
export function normalizePath (rawPath: string): string | null {
  const encodedPath = normalizeEncoding(rawPath, PATH_CHARS)
  return encodedPath === null ? null : removeDotSegments(encodedPath)
}

/**
 * Finishes the key of a normalized target for its route: `ignore` says which query parameter
 * names (decoded) leave the key and the forwarded request; the rest are sorted by name.
 */
export function keyOf (target: NormalizedTarget, ignore: (name: string) => boolean = () => false): NormalizedUrl {
  if (!target.ok) return target
  // Sorted by name; Array.prototype.sort is stable, so repeated names keep their order.
  const params = target.params.filter((p) => !ignore(p.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const query = params.map((p) => p.pair).join('&')
  const pathAndQuery = query === '' ? target.path : `${target.path}?${query}`
  return {
    ok: true,
    key: `${target.scheme}://${target.authority}${pathAndQuery}` as CacheKey,
    authority: target.authority,
    pathAndQuery,
    path: target.path
  }
}

/**
 * The primary cache key and the origin request target for a client request.
 * `ignore` says which query parameter names (decoded) leave the key and the forwarded request.
 */
export function normalizeRequestUrl (input: KeyInput, ignore: (name: string) => boolean = () => false): NormalizedUrl {
  return keyOf(normalizeTarget(input), ignore)
}

/** Normalizes an absolute URL (purge API, Location headers) the same way as a request. */
export function normalizeAbsoluteUrl (url: string, ignore?: (name: string) => boolean): NormalizedUrl {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(url)
  if (m === null) return { ok: false, reason: 'expected an absolute http(s) URL' }
  const [, scheme = '', host = '', rest = ''] = m
  // RFC 3986 §6.2.3: an empty path is "/", also before a query or a fragment.
  const target = rest === '' || rest.startsWith('?') || rest.startsWith('#') ? '/' + rest : rest
  return normalizeRequestUrl({ scheme, host, target }, ignore)
}

/**
 * The origin (scheme://host[:port]) of a normalized absolute URL: the text up to the start of
 * its path, query or fragment, taken from the key itself rather than re-parsed, so per-origin
 * indexes always agree with the key's spelling. Shared by every store and the purge.
 */
export function originOf (url: string): string {
  const authority = url.indexOf('://')
  const from = authority === -1 ? 0 : authority + 3
  for (let i = from; i < url.length; i++) {
    const c = url.charCodeAt(i)
    if (c === 0x2f || c === 0x3f || c === 0x23) return url.slice(0, i) // '/', '?', '#'
  }
  return url
}
