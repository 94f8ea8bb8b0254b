/**
 * A POST's response kept as the GET response of its URL (RFC 9110 §9.3.3; the terms are in
 * cache/post-as-get.ts). Called once the POST's §4.4 invalidation is done, so the entry can
 * never be followed by the invalidation of what it replaced. The store writer judges it from
 * its head first: a refused response (credentials, private, too large, ...) goes to the client
 * untouched, so nothing of it is buffered and the origin is read only while the client reads.
 * Otherwise the body streams to the client through a Flight that keeps a copy up to
 * cache.maxObjectSize; the store writer commits it only once the body ended complete (a larger
 * or cut-short body is simply not stored). The flight is never offered to GET misses: what a
 * POST got is shared only once it is stored.
 */
import type { Readable } from 'node:stream'
import { PassThrough } from 'node:stream'
import { parseCacheControl } from '../cache/cache-control.ts'
import type { CacheStatus } from '../cache/cache-status.ts'
import { postAsGet } from '../cache/post-as-get.ts'
import { Flight, type Fetched } from './coalesce.ts'
import type { StoreWriter } from './store-writer.ts'
import type { CacheRequest } from './types.ts'

/** The POST: its route, the key of its URL, the client's headers and those forwarded (its variant). */
export type PostRequest = Pick<CacheRequest, 'route' | 'key' | 'headers' | 'forward'>

export interface AdoptedPost {
  /** What to send the client: the origin's body, or the flight's copy of it. */
  body: Readable
  /** What Cache-Status adds: `stored`, or why a response that named itself was not stored. */
  cacheStatus: Pick<CacheStatus, 'stored' | 'detail'>
}

export interface PostStoreOptions {
  writer: Pick<StoreWriter, 'judge' | 'write' | 'failing'>
  maxObjectSize: number
}

export function adoptPost ({ writer, maxObjectSize }: PostStoreOptions, req: PostRequest, fetched: Fetched): AdoptedPost {
  const { res, requestTime, responseTime } = fetched
  // Most POST responses do not present themselves as their URL's GET response: they go
  // through untouched, and nothing is recorded for the URL (GET /explain keeps its last GET).
  if (!req.route.enabled || !req.route.storePostResponses || !postAsGet(res.status, res.headers, req.key, req.route).storable) {
    return { body: res.body, cacheStatus: {} }
  }
  const verdict = writer.judge({
    req,
    directives: parseCacheControl(req.headers['cache-control']),
    head: { status: res.status, headers: res.headers, requestTime, responseTime },
    bypassed: false,
    now: responseTime,
    post: true
  })
  if (verdict.kind === 'refused') return { body: res.body, cacheStatus: { detail: verdict.detail } }
  if (verdict.kind === 'bypassed') return { body: res.body, cacheStatus: {} }
  const flight = new Flight(async () => await Promise.resolve(fetched), maxObjectSize)
  // A flight nobody has read from yet always gives a subscriber; the fallback only satisfies the type.
  const body = flight.subscribe() ?? new PassThrough().destroy(new Error('the POST response could not be read'))
  const admission = writer.write(verdict, flight)
  // Claimed only while the store is not known to be failing (the write is still to come).
  return { body, cacheStatus: admission.kind === 'storing' && !writer.failing ? { stored: true } : {} }
}
