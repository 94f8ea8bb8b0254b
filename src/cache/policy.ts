/**
 * May this stored response answer this request, and how? RFC 9111 §4 (reuse), §4.2.4
 * (serving stale), §5.2.1 (request directives) and RFC 5861 (stale-while-revalidate,
 * stale-if-error). Every branch carries a `detail` used word for word in Cache-Status,
 * the log line and /explain.
 */
import { deltaSeconds, type Directives } from './cache-control.ts'
import type { CacheEntry } from './entry.ts'
import { currentAge, retention } from './freshness.ts'

export interface RequestDirectives {
  /** The request's Cache-Control (Pragma: no-cache already folded in, §5.4). */
  directives: Directives
}

export type Decision =
  /** Serve from cache. */
  | { kind: 'fresh', age: number, ttl: number }
  /** Serve stale now and refresh in the background (RFC 5861 §3, or request max-stale). */
  | { kind: 'stale', age: number, ttl: number, refresh: boolean, detail: 'stale-while-revalidate' | 'max-stale' }
  /** Ask the origin, conditionally when the entry has validators. */
  | { kind: 'revalidate', age: number, ttl: number, detail: RevalidateReason }

export type RevalidateReason =
  | 'stale'
  | 'request-no-cache'
  | 'response-no-cache'
  | 'request-max-age'
  | 'request-min-fresh'
  | 'must-revalidate'
  | 'purged'

/**
 * Request Cache-Control with §5.4 Pragma: no-cache folded in when Cache-Control is absent.
 * `ignoreNoCache` (a route's ignoreClientNoCache, as CDNs do) drops the directives a browser's
 * reload sends (no-cache, Pragma: no-cache, max-age=0): the client is served from cache as if
 * it had not asked to revalidate. Deliberately outside RFC 9111 §5.2.1, and off by default.
 */
export function requestDirectives (cacheControl: Directives, pragma: string | undefined, ignoreNoCache = false): Directives {
  if (ignoreNoCache) {
    if (!cacheControl.has('no-cache') && !cacheControl.has('max-age')) return cacheControl
    const kept = new Map(cacheControl)
    kept.delete('no-cache')
    kept.delete('max-age')
    return kept
  }
  if (cacheControl.size === 0 && pragma !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(pragma)) {
    return new Map([['no-cache', true]])
  }
  return cacheControl
}

/** ms of freshness left (negative when stale); a soft-purged entry is stale from its purge. */
export function remainingFreshness (entry: CacheEntry, now: number): number {
  const ttl = entry.freshness - currentAge(entry, now)
  if (entry.invalidatedAt > 0 && now >= entry.invalidatedAt) return Math.min(ttl, -(now - entry.invalidatedAt) - 1)
  return ttl
}

export function decide (entry: CacheEntry, request: Directives, now: number): Decision {
  const age = currentAge(entry, now)
  const ttl = remainingFreshness(entry, now)
  const revalidate = (detail: RevalidateReason): Decision => ({ kind: 'revalidate', age, ttl, detail })

  // §5.2.1.4 request no-cache: a stored response must not be used without validation.
  if (request.has('no-cache')) return revalidate('request-no-cache')
  // §5.2.2.4 response no-cache (unqualified): always validate.
  if (entry.noCache) return revalidate('response-no-cache')

  // §5.2.1.1 request max-age: not older than N seconds.
  const maxAge = deltaSeconds(request, 'max-age')
  if (maxAge !== undefined && (maxAge === 'invalid' || age > maxAge * 1000)) return revalidate('request-max-age')

  if (ttl > 0) {
    // §5.2.1.3 min-fresh: fresh for at least N more seconds.
    const minFresh = deltaSeconds(request, 'min-fresh')
    if (minFresh !== undefined && minFresh !== 'invalid' && ttl < minFresh * 1000) return revalidate('request-min-fresh')
    return { kind: 'fresh', age, ttl }
  }

  const staleFor = -ttl
  const purged = entry.invalidatedAt > 0 && now >= entry.invalidatedAt
  // §4.2.4 / §5.2.2.2: must-revalidate (and proxy-revalidate for shared caches) forbid stale use.
  if (entry.mustRevalidate) return revalidate('must-revalidate')

  // §5.2.1.2 max-stale: the client accepts a stale response (unbounded without a value).
  const maxStale = request.get('max-stale')
  if (maxStale !== undefined && !purged) {
    const limit = maxStale === true ? Infinity : /^\d+$/.test(maxStale) ? Number(maxStale) * 1000 : -1
    if (staleFor <= limit) return { kind: 'stale', age, ttl, refresh: false, detail: 'max-stale' }
  }

  // RFC 5861 §3: serve stale within the window and revalidate in the background. A request
  // that set max-age (any value we got here with) wants a fresher answer, so it waits.
  // The window is half-open, like the store's retention: a window of 0 never serves stale.
  if (staleFor < entry.staleWhileRevalidate && maxAge === undefined) {
    return { kind: 'stale', age, ttl, refresh: true, detail: 'stale-while-revalidate' }
  }
  return revalidate(purged ? 'purged' : 'stale')
}

/**
 * RFC 5861 §4: may this entry answer in place of an origin error? Not when must-revalidate,
 * proxy-revalidate or no-cache forbid stale use, nor when the client asked for no-cache.
 * A request's own stale-if-error=N may widen the window.
 */
export function mayServeStaleOnError (entry: CacheEntry, request: Directives, now: number): boolean {
  if (entry.mustRevalidate || entry.noCache || request.has('no-cache')) return false
  const staleFor = -remainingFreshness(entry, now)
  const requested = deltaSeconds(request, 'stale-if-error')
  const window = Math.max(entry.staleIfError, typeof requested === 'number' ? requested * 1000 : 0)
  // Half-open like the stale-while-revalidate window: a window of 0 never serves stale.
  return staleFor < window
}

/** Origin statuses that count as errors for stale-if-error (RFC 5861 §4). */
export const ERROR_STATUSES = new Set([500, 502, 503, 504])

/**
 * Refresh-ahead (probabilistic early expiration, as in "XFetch"): in the last tenth of an
 * entry's lifetime (at least one second) a hit triggers a background refresh with a
 * probability that rises to 1 at expiry, so a popular key is refreshed before it goes stale
 * and refreshes of keys stored together spread out.
 */
export function refreshAheadDue (entry: Pick<CacheEntry, 'freshness'>, ttl: number, random: number): boolean {
  const window = Math.max(1000, entry.freshness * 0.1)
  if (ttl <= 0 || ttl >= window) return false
  return random < 1 - ttl / window
}

/**
 * Past freshness and both stale windows (plus the route's `keep` for entries with a
 * validator) an entry is gone, whatever the store's own garbage-collection TTL says.
 */
export function outlived (entry: CacheEntry, now: number, keep: number): boolean {
  return now > entry.responseTime + retention(entry, keep)
}
