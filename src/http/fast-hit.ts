/**
 * The hot path for the commonest request of all: a plain GET or HEAD whose fresh answer sits
 * in this process's memory (memory store, or the L1 tier). It is answered straight from the
 * Node request listener, before fastify routes it, with headers precomputed once per stored
 * entry. Anything else (conditionals, ranges, request directives, credentials, variants,
 * stale or absent entries) goes the full way through fastify and the read-through lifecycle,
 * which makes the same decision more slowly; this path only ever takes the "fresh" branch.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { formatCacheStatus } from '../cache/cache-status.ts'
import type { CacheEntry } from '../cache/entry.ts'
import type { CacheKey } from '../cache/key.ts'
import { decide } from '../cache/policy.ts'
import type { Clock } from '../clock.ts'
import type { RouteMatcher } from '../config/routes.ts'
import type { GatewayConfig, RouteConfig } from '../config/types.ts'
import type { RequestOutcome } from '../observability/events.ts'
import type { Store, StoreLookup } from '../store/store.ts'
import { BoundedMap, type BoundedMapStats } from '../bounded-map.ts'
import { plainHitHost, plainHitRoute, requestScheme, resolveRequest } from './request-fields.ts'
import { entryForm, writeEntryAnswer } from './respond.ts'

export interface FastHitDeps {
  config: () => GatewayConfig
  routes: () => RouteMatcher
  store: Store
  clock: Clock
  onOutcome: (o: RequestOutcome) => void
  /** A failure while answering (the request then went the full way, as a miss, or was cut off). */
  onError?: (err: unknown) => void
}

const NO_DIRECTIVES = new Map<string, string | true>()

/** A lookup made by the fast path, handed to the full path with the request. */
export type Prefetched = { key: CacheKey, result: StoreLookup } | { key: CacheKey, error: unknown }
const PREFETCHED = Symbol('cachegate.prefetched')
type Prefetching = IncomingMessage & { [PREFETCHED]?: Prefetched }

/** The fast path's lookup for this request, if it made one for this key. */
export function prefetched (req: IncomingMessage, key: CacheKey): Prefetched | undefined {
  const p = (req as Prefetching)[PREFETCHED]
  return p?.key === key ? p : undefined
}

/**
 * A request answered here is never read: whatever body it has is dropped as the parser sees
 * it, which is what Node's server does after the response for a request nobody read
 * (`req._dump()`). Marking it up front spares the hit that after-the-fact drain: a resume, a
 * flow, an 'end', an auto-destroy and a 'close', four `process.nextTick` callbacks and their
 * event emits per request, on a path where each costs as much as cachegate's own work.
 *
 * Only while nothing is buffered: body bytes already pushed may have paused the socket
 * (backpressure), and only Node's own drain resumes it. `_dumped` is the flag `_dump()` sets;
 * the parser (`parserOnBody`) drops the body chunks of a request that carries it.
 */
function discardUnread (req: IncomingMessage): void {
  if (req.readableLength === 0 && !req.readableFlowing) (req as IncomingMessage & { _dumped: boolean })._dumped = true
}

/** A target's normalization for one scheme and host; result null: not answered here. */
interface Resolution { scheme: string, host: string, result: { route: RouteConfig, key: CacheKey } | null }
const KEY_CACHE = {
  maxEntries: 10_000,
  maxBytes: 8 * 1024 * 1024,
  sizeOf: (v: Resolution, target: string): number => target.length * 2 + v.host.length * 2 + (v.result === null ? 8 : v.result.key.length * 2 + 32)
}

export class FastHit {
  readonly #d: FastHitDeps
  /**
   * Normalized keys of recently seen (scheme, host, target) triples: normalization is pure, so
   * it is cached. Looked up by the target alone, the common case (one host per path) needs no
   * composed string; the same target on another host or scheme goes to #otherKeys.
   */
  readonly #keys = new BoundedMap<string, Resolution>(KEY_CACHE)
  readonly #otherKeys = new BoundedMap<string, Resolution>(KEY_CACHE)

  #enabled = true

  constructor (deps: FastHitDeps) {
    this.#d = deps
  }

  /** Stops answering (shutdown, reload): the full path takes every request. */
  disable (): void {
    this.#enabled = false
  }

  /** Size of the key normalization cache (bounded: a burst of unique URLs cannot grow it). */
  keyCache (): BoundedMapStats {
    const a = this.#keys.stats()
    const b = this.#otherKeys.stats()
    return { entries: a.entries + b.entries, bytes: a.bytes + b.bytes, maxEntries: a.maxEntries + b.maxEntries, maxBytes: a.maxBytes + b.maxBytes, evictions: a.evictions + b.evictions }
  }

  /** Forgets cached key normalizations (after a reload changed the routes). */
  reset (): void {
    this.#keys.clear()
    this.#otherKeys.clear()
  }

  /**
   * Answers a plain fresh hit, else hands the request to `fallback` (fastify). Entries held in
   * this process are read synchronously; for a shared store the lookup is made here, and a
   * request that turns out not to be a plain fresh hit carries the lookup's result to the
   * full path (see `prefetched`), so the store is asked once per request either way.
   */
  handle (req: IncomingMessage, res: ServerResponse, fallback: (req: IncomingMessage, res: ServerResponse) => void): void {
    const start = performance.now()
    const method = req.method
    const target = req.url
    const host = this.#enabled ? plainHitHost(method, req.rawHeaders) : undefined
    if (host === undefined || target === undefined || method === undefined) {
      fallback(req, res)
      return
    }
    const resolved = this.#resolve(requestScheme(req.socket), host, target)
    if (resolved === null) {
      fallback(req, res)
      return
    }
    const store = this.#d.store
    const held = store.peek?.(resolved.key)
    if (held !== undefined && this.#guarded(req, res, fallback, method, resolved.route, resolved.key, held, start)) return
    if (store.kind === 'memory') {
      // Nothing else to look at: the memory store holds everything it has in this process.
      fallback(req, res)
      return
    }
    store.lookup(resolved.key).then((result) => {
      if (result.entry !== null && result.vary?.length === 0 && this.#guarded(req, res, fallback, method, resolved.route, resolved.key, result.entry, start)) return
      (req as Prefetching)[PREFETCHED] = { key: resolved.key, result }
      fallback(req, res)
    }, (error: unknown) => {
      (req as Prefetching)[PREFETCHED] = { key: resolved.key, error }
      fallback(req, res)
    }).catch((err: unknown) => {
      // Nothing may escape as an unhandled rejection: that would end the process.
      this.#d.onError?.(err)
      if (!res.writableEnded) res.destroy()
    })
  }

  /**
   * #send, guarded: whatever throws while answering from a stored entry (stored data is
   * untrusted), the request is not lost and the process does not fail. Before anything was
   * sent, the request goes the full way as a miss (to the origin), with the fields a failed
   * writeHead may have set removed; after, an unfinished response is cut off.
   */
  #guarded (req: IncomingMessage, res: ServerResponse, fallback: (req: IncomingMessage, res: ServerResponse) => void, method: string, route: RouteConfig, key: CacheKey, entry: CacheEntry, start: number): boolean {
    try {
      if (!this.#send(res, method, route, key, entry, start)) return false
      discardUnread(req)
      return true
    } catch (err) {
      this.#d.onError?.(err)
      if (res.headersSent) {
        // Answered already (a listener failed after the end): keep it; else cut it off.
        if (!res.writableEnded) res.destroy()
        return true
      }
      for (const name of res.getHeaderNames()) res.removeHeader(name)
      ;(req as Prefetching)[PREFETCHED] = { key, result: { vary: [], entry: null } }
      fallback(req, res)
      return true
    }
  }

  /** Writes the hit when the entry is this URL's, has no variant and is fresh; false (nothing written) otherwise. */
  #send (res: ServerResponse, method: string, route: RouteConfig, key: CacheKey, entry: CacheEntry, start: number): boolean {
    const form = entryForm(entry, route)
    if (entry.url !== key || form.varies) return false
    const decision = decide(entry, NO_DIRECTIVES, this.#d.clock.now())
    if (decision.kind !== 'fresh') return false
    const cacheStatus = formatCacheStatus({ hit: true, ttl: decision.ttl / 1000 })
    writeEntryAnswer(res, method, entry, form, decision.age, cacheStatus)
    this.#d.onOutcome({
      route: route.name,
      method,
      url: key,
      outcome: 'hit',
      status: entry.status,
      cacheStatus,
      originStatus: undefined,
      collapsed: false,
      durationMs: performance.now() - start
    })
    return true
  }

  #resolve (scheme: string, host: string, target: string): { route: RouteConfig, key: CacheKey } | null {
    // peek, not get: eviction in insertion order keeps a hit free of bookkeeping.
    const known = this.#keys.peek(target)
    if (known !== undefined && known.host === host && known.scheme === scheme) return known.result
    const id = `${scheme}\n${host}\n${target}`
    if (known !== undefined) {
      const other = this.#otherKeys.peek(id)
      if (other !== undefined) return other.result
    }
    let result: { route: RouteConfig, key: CacheKey } | null = null
    if (target.length <= this.#d.config().limits.maxUrlLength) {
      // The same resolution as the full path: routed on the normalized path (request-fields.ts).
      const r = resolveRequest(this.#d.routes(), { scheme, host, target })
      if (r.ok && plainHitRoute(r.route)) {
        result = { route: r.route, key: r.url.key }
      }
    }
    if (known === undefined) this.#keys.set(target, { scheme, host, result })
    else this.#otherKeys.set(id, { scheme, host, result })
    return result
  }
}
