/**
 * May this response be stored by a shared cache? RFC 9111 §3 and §3.5, plus cachegate's
 * own refusals (Set-Cookie, content types a route does not expect).
 * Returns a reason instead of throwing; the reason is used word for word in Cache-Status.
 */
import { deltaSeconds, type Directives } from './cache-control.ts'
import type { IncomingHeaders } from './headers.ts'
import { single } from './headers.ts'
import { parseVary } from './vary.ts'

/** RFC 9110 §15.1: statuses cacheable by default (heuristically cacheable). */
export const HEURISTIC_STATUSES = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])

export interface StorePolicy {
  /** Content-Type prefixes the route may store; empty allows any. */
  storeContentTypes: readonly string[]
  /** Route default TTL in ms, if any: makes heuristically cacheable statuses storable. */
  defaultTtl: number | undefined
}

export type Storability = { storable: true } | { storable: false, detail: string }

const no = (detail: string): Storability => ({ storable: false, detail })

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
  // §3: no-store in request or response.
  if (request.has('no-store')) return no('request-no-store')
  if (response.has('no-store')) return no('no-store')
  // §3: a shared cache must not store a response with private. §5.2.2.7 lets the qualified form
  // store the rest of the response; deliberately, any private refuses it all.
  if (response.has('private')) return no('private')
  // §3.5: Authorization in the request needs explicit permission.
  if (requestHeaders.authorization !== undefined && !sharedWithCredentials(response)) return no('authorization')
  // Deliberately stricter than §3: Set-Cookie belongs to one client, whatever the directives say.
  if (responseHeaders['set-cookie'] !== undefined) return no('set-cookie')
  const vary = parseVary(responseHeaders.vary)
  if (vary === '*') return no('vary-star')
  if (policy.storeContentTypes.length > 0) {
    const ct = (single(responseHeaders['content-type']) ?? '').toLowerCase()
    if (!policy.storeContentTypes.some((p) => ct.startsWith(p.toLowerCase()))) return no('content-type')
  }
  // §3: the response must carry explicit freshness, public, or be heuristically cacheable.
  const explicit =
    response.has('s-maxage') || response.has('max-age') ||
    (!targeted && responseHeaders.expires !== undefined)
  if (explicit) {
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
