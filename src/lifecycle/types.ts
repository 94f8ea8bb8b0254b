/**
 * The values the read-through lifecycle's parts pass each other: a request for the cache, the
 * answer http/respond.ts turns into a response, what a lookup found, and the context of a miss.
 */
import type { Readable } from 'node:stream'
import type { Directives } from '../cache/cache-control.ts'
import type { CacheStatus } from '../cache/cache-status.ts'
import type { CacheEntry } from '../cache/entry.ts'
import type { IncomingHeaders } from '../cache/headers.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'
import type { RouteConfig } from '../config/types.ts'
import type { GatewayError } from '../errors.ts'
import type { StoreLookup } from '../store/store.ts'
import type { Fetched, Flight } from './coalesce.ts'
import type { FillResult } from './fill.ts'

export type Outcome = 'hit' | 'stale' | 'revalidated' | 'miss' | 'pass' | 'error'

export interface CacheRequest {
  route: RouteConfig
  key: CacheKey
  /** Normalized path and query forwarded to the origin. */
  path: string
  method: 'GET' | 'HEAD'
  /** The client's request headers (lower-case names). */
  headers: IncomingHeaders
  /**
   * Headers to send to the origin: hop-by-hop and unkeyed headers removed, X-Forwarded-* and Via
   * set (http/forwarding.ts). Variant values (route key headers and cookies, Vary) are read from
   * these, not from the client's headers: a field the client's Connection names never reaches
   * the origin, so the answer must not be stored as, found for, or shared with the variant of
   * a value the origin never saw (RFC 9111 §4.1 compares the request the response answered).
   */
  forward: Record<string, string | string[]>
  /** The store lookup already made for this request (fast path), used instead of asking again. */
  lookup?: { result: StoreLookup } | { error: unknown } | undefined
  /** Relays the origin's interim responses (103 Early Hints) to this client, on the fetches it leads. */
  interim?: ((status: number, headers: Record<string, string | string[]>) => void) | undefined
}

export type Answer =
  | { kind: 'entry', entry: CacheEntry, age: number, cacheStatus: CacheStatus, outcome: Outcome }
  | { kind: 'stream', status: number, headers: Record<string, string | string[]>, body: Readable, cacheStatus: CacheStatus, outcome: Outcome }
  | { kind: 'error', error: GatewayError, cacheStatus: CacheStatus, outcome: Outcome }

export type LifecycleEvent =
  | { type: 'refresh', route: string, result: 'started' | 'succeeded' | 'failed' }
  | { type: 'collapsed', route: string }
  | { type: 'origin', route: string, status: number | 'error', seconds: number }

/** What a lookup found for a request: the entry (verified against URL and variant values) and the URL's Vary record. */
export interface Found {
  entry: CacheEntry | null
  vary: readonly string[] | null
  variant: VariantId | undefined
  values: Record<string, string | null> | undefined
  storeDetail: string | undefined
}

/**
 * A miss to serve: the request, its directives, what the lookup found, the Cache-Status so far,
 * the stored entry it replaces (a revalidation that got a full response or none) and a response
 * already in hand (a revalidation's or conditional miss's full answer).
 */
export interface MissContext {
  req: CacheRequest
  directives: Directives
  found: Found
  status: CacheStatus
  stale?: CacheEntry | undefined
  already?: Fetched | undefined
}

/** A miss this instance leads: its flight, the leader's stream of it, and where the fill's outcome goes. */
export interface LeadContext extends MissContext {
  flight: Flight
  body: Readable | null
  now: number
  storing: (result: Promise<FillResult>) => void
}
