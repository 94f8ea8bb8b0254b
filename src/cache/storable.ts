/**
 * May this response be stored by a shared cache? RFC 9111 §3 and §3.5, plus cachegate's
 * own refusals (Set-Cookie, content types a route does not expect).
 * Returns a reason instead of throwing; the reason is used word for word in Cache-Status.
 */
import { deltaSeconds, type Directives } from './cache-control.ts'
import type { IncomingHeaders } from './headers.ts'
import { single } from './headers.ts'
import { cookieNames, parseVary } from './vary.ts'

/**
 * The status codes RFC 9110 §15 defines, whose caching rules cachegate implements (§5.2.2.3
 * must-understand): a response with must-understand and any other status is not stored.
 */
export const UNDERSTOOD_STATUSES = new Set([
  200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426,
  500, 501, 502, 503, 504, 505
])

/** RFC 9110 §15.1: statuses cacheable by default (heuristically cacheable). */
export const HEURISTIC_STATUSES = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])

export interface StorePolicy {
  /** Content-Type prefixes the route may store; empty allows any. */
  storeContentTypes: readonly string[]
  /** Route default TTL in ms, if any: makes heuristically cacheable statuses storable. */
  defaultTtl: number | undefined
  /** Cookies the route keys on: a request whose cookies are all keyed is treated as cookieless. */
  key: { readonly cookies: readonly string[] }
  /**
   * The route's explicit opt-out (off by default): responses to requests with Cookie may be
   * cached by the route's default TTL, heuristic freshness and stale windows.
   */
  implicitCachingWithCookies: boolean
}

export type Storability = { storable: true } | { storable: false, detail: string }

const no = (detail: string): Storability => ({ storable: false, detail })

/**
 * Refusals that concern the request, not the response: another client's request may well get
 * the same response stored. They never mark a URL uncacheable (hit-for-miss) nor delete what
 * is stored: one client's request must not change what every other client gets.
 */
export const REQUEST_SCOPED = new Set(['request-no-store', 'authorization', 'cookie'])

/**
 * `response` are the directives in force for this cache (targeted field or Cache-Control);
 * `request` the request's Cache-Control.
 */
export function storability (
  method: string,
  requestHeaders: IncomingHeaders,
  request: Directives,
  status: number,
  responseHeaders: IncomingHeaders,
  response: Directives,
  targeted: boolean,
  policy: StorePolicy
): Storability {
  // §3 allows any cacheable method; deliberately only GET is stored (a HEAD answer has no body
  // to serve a later GET).
  if (method !== 'GET') return no('method')
  // §3.3 allows storing incomplete responses; deliberately not: ranges are served from full 200s.
  if (status === 206) return no('partial-content')
  if (status < 200 || status === 304) return no('status')
  // §3: no-store in request or response. §5.2.2.3 must-understand: store only a status code
  // whose caching rules this cache implements, and then ignore the response's no-store.
  if (request.has('no-store')) return no('request-no-store')
  const mustUnderstand = response.has('must-understand')
  if (mustUnderstand && !UNDERSTOOD_STATUSES.has(status)) return no('must-understand')
  if (response.has('no-store') && !mustUnderstand) return no('no-store')
  // §3: a shared cache must not store a response with private. §5.2.2.7 lets the qualified form
  // store the rest of the response; deliberately, any private refuses it all.
  if (response.has('private')) return no('private')
  // §3.5: Authorization in the request needs explicit permission.
  if (requestHeaders.authorization !== undefined && !sharedWithCredentials(response)) return no('authorization')
  // Deliberately stricter than §3: a response to a request with cookies the route does not key
  // on may be personal; it is shared only when the origin gave it explicit freshness.
  if (!implicitAllowed(requestHeaders, policy) && !explicitFreshness(responseHeaders, response, targeted)) return no('cookie')
  // Deliberately stricter than §3: Set-Cookie belongs to one client, whatever the directives say.
  if (responseHeaders['set-cookie'] !== undefined) return no('set-cookie')
  const vary = parseVary(responseHeaders.vary)
  if (vary === '*') return no('vary-star')
  if (policy.storeContentTypes.length > 0) {
    const ct = (single(responseHeaders['content-type']) ?? '').toLowerCase()
    if (!policy.storeContentTypes.some((p) => ct.startsWith(p.toLowerCase()))) return no('content-type')
  }
  // §3: the response must carry explicit freshness, public, or be heuristically cacheable.
  if (explicitFreshness(responseHeaders, response, targeted)) {
    const sm = deltaSeconds(response, 's-maxage')
    const ma = deltaSeconds(response, 'max-age')
    if (sm === 'invalid' || (sm === undefined && ma === 'invalid')) return no('invalid-freshness')
    return { storable: true }
  }
  if (HEURISTIC_STATUSES.has(status) || response.has('public')) return { storable: true }
  return no('status-not-cacheable')
}

/**
 * RFC 9111 §3.5: the directives that let a shared cache store a response to a request with
 * Authorization. Deliberately, the same test decides reuse: a request with Authorization is
 * answered from the cache only by a response stored under this permission (stricter than §4,
 * which would reuse any stored response): otherwise an origin that personalizes on
 * Authorization without `Vary: Authorization` would see its users given the anonymous answer.
 */
export function sharedWithCredentials (response: Directives): boolean {
  return response.has('public') || response.has('s-maxage') || response.has('must-revalidate')
}

/** §4.2.1: the response states its own freshness (s-maxage, max-age, or Expires unless targeted). */
export function explicitFreshness (headers: IncomingHeaders, response: Directives, targeted: boolean): boolean {
  return response.has('s-maxage') || response.has('max-age') || (!targeted && headers.expires !== undefined)
}

/**
 * May the route's implicit caching (default TTL, heuristic freshness, route stale windows)
 * apply to the response to this request? Not when it carried credentials: Authorization, or
 * a cookie the route does not key on (a session cookie makes a page personal even when the
 * origin forgot to say so). A route opts out for cookies only with implicitCachingWithCookies.
 */
export function implicitAllowed (requestHeaders: IncomingHeaders, policy: Pick<StorePolicy, 'key' | 'implicitCachingWithCookies'>): boolean {
  const carried = credentials(requestHeaders, policy.key)
  return carried === undefined || (carried === 'cookie' && policy.implicitCachingWithCookies)
}

/**
 * The credentials a request carries, whatever a route opts out of: `authorization`, or
 * `cookie` for a cookie the route does not key on (a key cookie selects a variant, so it is
 * no credential); undefined when it carries none. The words are Cache-Status details.
 */
export function credentials (requestHeaders: IncomingHeaders, key: StorePolicy['key']): 'authorization' | 'cookie' | undefined {
  if (requestHeaders.authorization !== undefined) return 'authorization'
  const cookie = requestHeaders.cookie
  if (cookie === undefined) return undefined
  return cookieNames(cookie).every((name) => key.cookies.includes(name)) ? undefined : 'cookie'
}
