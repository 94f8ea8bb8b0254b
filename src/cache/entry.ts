/**
 * A stored response: one per (URL, variant). Times are absolute milliseconds since the
 * epoch so that entries survive process restarts and any clock can read them; store TTLs
 * are only the outer bound for garbage collection.
 */
import type { CacheKey } from './key.ts'

/** Response header fields by lower-case name, as received minus hop-by-hop fields. */
export type HeaderMap = Record<string, string | string[]>

export interface CacheEntry {
  /** The normalized URL this entry answers; checked on every read so an entry can never answer another URL. */
  url: CacheKey
  status: number
  headers: HeaderMap
  body: Buffer
  /** When the request that produced this response was sent (RFC 9111 §4.2.3 request_time). */
  requestTime: number
  /** When the response was received (RFC 9111 §4.2.3 response_time). */
  responseTime: number
  /** corrected_initial_age of RFC 9111 §4.2.3, in ms, fixed at store time. */
  initialAge: number
  /** Freshness lifetime in ms, after the route's defaults and caps. */
  freshness: number
  /** RFC 5861 windows in ms, after the route's defaults. */
  staleWhileRevalidate: number
  staleIfError: number
  /** The Vary field names (lower-case) and this variant's normalized request values (null: header absent). */
  vary: Record<string, string | null>
  /** Surrogate keys (Surrogate-Key / Cache-Tag) the origin labelled this response with. */
  tags: string[]
  /** Response directives that bear on reuse, fixed at store time. */
  mustRevalidate: boolean
  noCache: boolean
  /** Set by a soft purge: the entry is stale from this time on whatever its freshness. 0 when not purged. */
  invalidatedAt: number
}
