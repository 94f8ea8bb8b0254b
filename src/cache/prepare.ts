/**
 * Turns an origin response into the metadata of a stored entry, or into the reason it may
 * not be stored. Used for fresh responses and, with merged headers, after a 304.
 */
import { effectiveResponseDirectives, type Directives } from './cache-control.ts'
import type { CacheEntry } from './entry.ts'
import { freshnessLifetime, initialAge, retention, staleWindows, type FreshnessPolicy, type Freshness } from './freshness.ts'
import { NOT_STORED, parseTags, withoutHopByHop, type IncomingHeaders } from './headers.ts'
import type { CacheKey } from './key.ts'
import { implicitAllowed, storability, type StorePolicy } from './storable.ts'
import { parseVary } from './vary.ts'

export type EntryPolicy = StorePolicy & FreshnessPolicy

export interface OriginAnswer {
  url: CacheKey
  method: string
  requestHeaders: IncomingHeaders
  request: Directives
  status: number
  headers: IncomingHeaders
  requestTime: number
  responseTime: number
}

export type Prepared =
  | { storable: true, meta: Omit<CacheEntry, 'body' | 'vary'>, varyNames: string[], freshness: Freshness, ttlMs: number }
  | { storable: false, detail: string }

/**
 * Fields not to keep in the stored headers: NOT_STORED, plus those named by a qualified
 * no-cache (§5.2.2.4: they must not be sent from cache without revalidation; the rest of the
 * response may be reused). Never storing them is the simplest way to obey that.
 */
function notStored (directives: Directives): ReadonlySet<string> {
  const noCache = directives.get('no-cache')
  if (typeof noCache !== 'string') return NOT_STORED
  const out = new Set(NOT_STORED)
  for (const name of noCache.split(',')) {
    const field = name.trim().toLowerCase()
    if (field !== '') out.add(field)
  }
  return out
}

export function prepareEntry (answer: OriginAnswer, policy: EntryPolicy): Prepared {
  const { directives, targeted } = effectiveResponseDirectives(answer.headers)
  const verdict = storability(answer.method, answer.requestHeaders, answer.request, answer.status, answer.headers, directives, targeted, policy)
  if (!verdict.storable) return verdict
  const vary = parseVary(answer.headers.vary)
  if (vary === '*') return { storable: false, detail: 'vary-star' }
  const implicit = implicitAllowed(answer.requestHeaders, policy)
  const lifetime = freshnessLifetime(answer.status, answer.headers, directives, targeted, answer.responseTime, policy, implicit)
  const age = initialAge(answer.headers, answer.requestTime, answer.responseTime)
  // §5.2.2.2 must-revalidate; §5.2.2.8 proxy-revalidate applies to shared caches. §5.2.2.10 says
  // s-maxage implies proxy-revalidate; deliberately, an explicit RFC 5861 directive in the same
  // response wins over that implication (`s-maxage=60, stale-while-revalidate=30` is common).
  const mustRevalidate = directives.has('must-revalidate') || directives.has('proxy-revalidate') ||
    (directives.has('s-maxage') && !directives.has('stale-while-revalidate') && !directives.has('stale-if-error'))
  // §5.2.2.4: only the unqualified form forces validation of the whole response.
  const noCache = directives.get('no-cache') === true
  // Only the origin's permission shares a stale response: the route's stale windows apply to
  // responses that were fresh for a positive time when received, whose directives allow stale
  // use, to requests without credentials. The origin's own stale-while-revalidate and
  // stale-if-error always count (RFC 5861).
  const routeWindows = implicit && lifetime.lifetime > age && !mustRevalidate && !noCache
  const freshness: Freshness = routeWindows ? lifetime : { ...lifetime, ...staleWindows(directives, { staleWhileRevalidate: 0, staleIfError: 0 }) }
  const meta: Omit<CacheEntry, 'body' | 'vary'> = {
    url: answer.url,
    status: answer.status,
    headers: withoutHopByHop(answer.headers, notStored(directives)),
    requestTime: answer.requestTime,
    responseTime: answer.responseTime,
    initialAge: age,
    freshness: freshness.lifetime,
    staleWhileRevalidate: freshness.staleWhileRevalidate,
    staleIfError: freshness.staleIfError,
    tags: parseTags(answer.headers),
    mustRevalidate,
    noCache,
    invalidatedAt: 0
  }
  const ttlMs = retention(meta, policy.keep ?? 0)
  if (ttlMs <= 0) return { storable: false, detail: 'stale-on-arrival' }
  return { storable: true, meta, varyNames: vary, freshness, ttlMs }
}
