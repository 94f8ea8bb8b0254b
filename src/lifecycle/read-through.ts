/**
 * The read-through lifecycle for GET and HEAD: look up, decide, and serve from the store,
 * revalidate, or fetch (coalesced) and store. It asks the pure decisions in cache/ and
 * drives the store and the origin client; it never writes to the client itself; it returns
 * an Answer that http/respond.ts turns into a response.
 */
import type { Readable } from 'node:stream'
import { parseCacheControl, type Directives } from '../cache/cache-control.ts'
import type { CacheStatus } from '../cache/cache-status.ts'
import { hasValidators, merge304Headers, notModifiedMatches, validatorHeaders } from '../cache/conditional.ts'
import type { CacheEntry } from '../cache/entry.ts'
import { retention } from '../cache/freshness.ts'
import { single, type IncomingHeaders } from '../cache/headers.ts'
import { NO_VARIANT, type CacheKey, type VariantId } from '../cache/key.ts'
import { decide, ERROR_STATUSES, mayServeStaleOnError, requestDirectives, type Decision } from '../cache/policy.ts'
import { prepareEntry } from '../cache/prepare.ts'
import { mergeSpec, sameVariant, variantId, variantValues } from '../cache/vary.ts'
import type { Clock } from '../clock.ts'
import type { CacheConfig, RouteConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import type { OriginClient, OriginResponse } from '../origin/client.ts'
import type { Store } from '../store/store.ts'
import { Coalescer, Flight, type FlightHead } from './coalesce.ts'
import type { Tasks } from './tasks.ts'

export type Outcome = 'hit' | 'stale' | 'revalidated' | 'miss' | 'pass' | 'error'

export interface CacheRequest {
  route: RouteConfig
  key: CacheKey
  /** Normalized path and query forwarded to the origin. */
  path: string
  method: 'GET' | 'HEAD'
  /** The client's request headers (lower-case names). */
  headers: IncomingHeaders
  /** Headers to send to the origin: hop-by-hop and unkeyed headers removed, X-Forwarded-* and Via set. */
  forward: Record<string, string | string[]>
}

export type Answer =
  | { kind: 'entry', entry: CacheEntry, age: number, cacheStatus: CacheStatus, outcome: Outcome }
  | { kind: 'stream', status: number, headers: Record<string, string | string[]>, body: Readable, cacheStatus: CacheStatus, outcome: Outcome }
  | { kind: 'error', error: GatewayError, cacheStatus: CacheStatus, outcome: Outcome }

/** Fields of the client's request that must not reach the origin on a fetch meant for the cache. */
const CLIENT_CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']

export interface ReadThroughOptions {
  store: Store
  origin: OriginClient
  clock: Clock
  tasks: Tasks
  cache: CacheConfig
  /** Reports store failures (the cache fails open to the origin). */
  onStoreError: (op: string, err: unknown) => void
}

interface Found {
  entry: CacheEntry | null
  vary: readonly string[] | null
  variant: VariantId | undefined
  values: Record<string, string | null> | undefined
  storeDetail: string | undefined
}

export class ReadThrough {
  readonly #o: ReadThroughOptions
  readonly #coalescer = new Coalescer()
  /** Hit-for-miss: keys recently found uncacheable, until when (ms). */
  readonly #uncacheable = new Map<string, number>()
  /** Background refreshes in progress in this instance, by URL + variant. */
  readonly #refreshing = new Set<string>()

  constructor (options: ReadThroughOptions) {
    this.#o = options
  }

  get inFlight (): number {
    return this.#coalescer.size
  }

  async handle (req: CacheRequest): Promise<Answer> {
    const now = this.#o.clock.now()
    const directives = requestDirectives(parseCacheControl(req.headers['cache-control']), single(req.headers.pragma))
    const found = await this.#find(req)

    if (found.entry !== null) {
      const decision = decide(found.entry, directives, now)
      return await this.#reuse(req, directives, found, decision)
    }

    if (directives.has('only-if-cached')) {
      // RFC 9111 §5.2.1.7: no stored response may be used, so 504.
      return { kind: 'error', error: new GatewayError('CG_ERR_ONLY_IF_CACHED'), cacheStatus: { fwd: 'miss', detail: 'only-if-cached' }, outcome: 'error' }
    }
    const fwd = found.vary === null ? 'uri-miss' : 'vary-miss'
    return await this.#miss(req, directives, found, { fwd, ...(found.storeDetail !== undefined ? { detail: found.storeDetail } : {}) })
  }

  /** The stored entry for this request's variant, verified against URL and variant values. */
  async #find (req: CacheRequest): Promise<Found> {
    const { route } = req
    let lookup
    try {
      lookup = await this.#o.store.lookup(req.key)
    } catch (err) {
      this.#o.onStoreError('lookup', err)
      return { entry: null, vary: null, variant: undefined, values: undefined, storeDetail: 'store-unavailable' }
    }
    if (lookup.vary === null) return { entry: null, vary: null, variant: undefined, values: undefined, storeDetail: undefined }
    const spec = mergeSpec(route.key.headers, route.key.cookies, lookup.vary)
    const values = variantValues(spec, req.headers)
    const variant = variantId(values)
    let entry = variant === NO_VARIANT ? lookup.entry : null
    if (variant !== NO_VARIANT) {
      try {
        entry = await this.#o.store.getVariant(req.key, variant)
      } catch (err) {
        this.#o.onStoreError('get', err)
        return { entry: null, vary: lookup.vary, variant, values, storeDetail: 'store-unavailable' }
      }
    }
    // Never answer with a response stored for another URL or another variant.
    if (entry !== null && (entry.url !== req.key || !sameVariant(entry.vary, values))) entry = null
    return { entry, vary: lookup.vary, variant, values, storeDetail: undefined }
  }

  async #reuse (req: CacheRequest, directives: Directives, found: Found, decision: Decision): Promise<Answer> {
    const entry = found.entry as CacheEntry
    if (decision.kind === 'fresh') {
      return { kind: 'entry', entry, age: decision.age, cacheStatus: { hit: true, ttl: decision.ttl / 1000 }, outcome: 'hit' }
    }
    if (decision.kind === 'stale') {
      if (decision.refresh) this.#refreshInBackground(req, entry)
      return { kind: 'entry', entry, age: decision.age, cacheStatus: { hit: true, fwd: 'stale', ttl: decision.ttl / 1000, detail: decision.detail }, outcome: 'stale' }
    }
    // Must revalidate (or refetch) in the foreground.
    const fwd = decision.detail.startsWith('request') ? 'request' : 'stale'
    if (directives.has('only-if-cached')) {
      return { kind: 'error', error: new GatewayError('CG_ERR_ONLY_IF_CACHED'), cacheStatus: { fwd, detail: 'only-if-cached' }, outcome: 'error' }
    }
    if (!hasValidators(entry)) return await this.#miss(req, directives, found, { fwd, detail: decision.detail }, entry)
    let res: OriginResponse
    const requestTime = this.#o.clock.now()
    try {
      res = await this.#o.origin.request(req.route, {
        method: 'GET',
        path: req.path,
        headers: { ...this.#forFetch(req.forward), ...validatorHeaders(entry) }
      })
    } catch (err) {
      const error = err instanceof GatewayError ? err : new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err })
      return this.#staleOrError(entry, directives, error, fwd)
    }
    const responseTime = this.#o.clock.now()
    if (res.status === 304 && notModifiedMatches(entry.headers, res.headers)) {
      res.body.resume()
      const merged = await this.#merge304(req, found, entry, res.headers, requestTime, responseTime)
      return { kind: 'entry', entry: merged, age: merged.initialAge, cacheStatus: { fwd, fwdStatus: 304, ...(merged === entry ? {} : { stored: true }) }, outcome: 'revalidated' }
    }
    if (ERROR_STATUSES.has(res.status) && mayServeStaleOnError(entry, directives, this.#o.clock.now())) {
      res.body.resume()
      return this.#staleAnswer(entry, fwd, res.status)
    }
    // A full response replaces the entry: treat it like a miss that already has its response.
    return await this.#miss(req, directives, found, { fwd, detail: decision.detail }, entry, res, requestTime, responseTime)
  }

  #staleAnswer (entry: CacheEntry, fwd: CacheStatus['fwd'], fwdStatus?: number): Answer {
    const now = this.#o.clock.now()
    const d = decide(entry, new Map(), now)
    return {
      kind: 'entry',
      entry,
      age: d.age,
      cacheStatus: { hit: true, fwd: fwd ?? 'stale', ...(fwdStatus !== undefined ? { fwdStatus } : {}), ttl: d.ttl / 1000, detail: 'stale-if-error' },
      outcome: 'stale'
    }
  }

  #staleOrError (entry: CacheEntry | undefined, directives: Directives, error: GatewayError, fwd: CacheStatus['fwd']): Answer {
    if (entry !== undefined && mayServeStaleOnError(entry, directives, this.#o.clock.now())) return this.#staleAnswer(entry, fwd)
    return { kind: 'error', error, cacheStatus: { ...(fwd !== undefined ? { fwd } : {}), detail: error.code === 'CG_ERR_ORIGIN_TIMEOUT' ? 'origin-timeout' : 'origin-unreachable' }, outcome: 'error' }
  }

  #forFetch (forward: Record<string, string | string[]>): Record<string, string | string[]> {
    const out = { ...forward }
    for (const name of CLIENT_CONDITIONALS) delete out[name]
    return out
  }

  /** RFC 9111 §4.3.4: freshen the stored response with the 304's fields; the body is kept. */
  async #merge304 (req: CacheRequest, found: Found, entry: CacheEntry, headers: Record<string, string | string[]>, requestTime: number, responseTime: number): Promise<CacheEntry> {
    const merged = merge304Headers(entry.headers, headers)
    const prepared = prepareEntry({
      url: req.key, method: 'GET', requestHeaders: req.headers, request: new Map(), status: entry.status, headers: merged, requestTime, responseTime
    }, req.route)
    if (!prepared.storable) {
      await this.#deleteVariant(req.key, found.variant ?? NO_VARIANT)
      return entry
    }
    const next: CacheEntry = { ...prepared.meta, body: entry.body, vary: entry.vary }
    await this.#put(req.key, found.variant ?? NO_VARIANT, next)
    return next
  }

  async #put (url: CacheKey, variant: VariantId, entry: CacheEntry): Promise<void> {
    const ttlMs = Math.max(1, Math.ceil(retention(entry)))
    try {
      await this.#o.store.put(url, variant, entry, { ttlMs, maxVariants: this.#o.cache.maxVariants })
    } catch (err) {
      this.#o.onStoreError('put', err)
    }
  }

  async #deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    try {
      await this.#o.store.deleteVariant(url, variant)
    } catch (err) {
      this.#o.onStoreError('delete', err)
    }
  }

  /**
   * RFC 5861 §3: one background revalidation per URL and variant in this instance; the
   * client that triggered it has already been answered from the stale entry.
   */
  #refreshInBackground (req: CacheRequest, entry: CacheEntry): void {
    const id = `${req.key}\n${variantId(entry.vary)}`
    if (this.#refreshing.has(id)) return
    this.#refreshing.add(id)
    this.#o.tasks.run('refresh', async () => {
      try {
        const found = await this.#find(req)
        const current = found.entry ?? entry
        const d = decide(current, new Map(), this.#o.clock.now())
        if (d.kind === 'fresh') return // refreshed meanwhile
        const answer = await this.#reuse({ ...req, method: 'GET' }, new Map(), { ...found, entry: current }, { kind: 'revalidate', age: d.age, ttl: d.ttl, detail: 'stale' })
        // A full response is stored by the flight; drain it since no client reads it.
        if (answer.kind === 'stream') answer.body.resume()
      } finally {
        this.#refreshing.delete(id)
      }
    })
  }

  /**
   * Fetch from the origin (coalesced with other misses for the same URL and variant),
   * stream to the client, and store the body once it is complete.
   */
  async #miss (
    req: CacheRequest,
    directives: Directives,
    found: Found,
    status: CacheStatus,
    stale?: CacheEntry,
    already?: OriginResponse,
    requestTime?: number,
    responseTime?: number
  ): Promise<Answer> {
    const now = this.#o.clock.now()
    const flightKey = found.variant === undefined ? `${req.key}\n?` : `${req.key}\n${found.variant}`
    const hfm = this.#uncacheable.get(req.key)
    const hitForMiss = hfm !== undefined && hfm > now
    if (hfm !== undefined && !hitForMiss) this.#uncacheable.delete(req.key)
    // Requests with credentials, or that must not share, fetch alone.
    const alone = already !== undefined || hitForMiss || req.headers.authorization !== undefined || directives.has('no-store')

    if (!alone) {
      const existing = this.#coalescer.get(flightKey)
      if (existing !== undefined) {
        const joined = await this.#join(req, existing)
        if (joined !== undefined) return joined
      }
    }

    const start = already !== undefined
      ? async () => await Promise.resolve(already)
      : async () => await this.#o.origin.request(req.route, { method: 'GET', path: req.path, headers: this.#forFetch(req.forward) })
    const clock = this.#o.clock
    let times = 0
    const flightNow = (): number => {
      times++
      if (times === 1 && requestTime !== undefined) return requestTime
      if (times === 2 && responseTime !== undefined) return responseTime
      return clock.now()
    }
    const flight = new Flight(start, this.#o.cache.maxObjectSize, flightNow)
    const body = flight.subscribe()
    if (!alone) this.#coalescer.start(flightKey, () => flight)

    let head: FlightHead
    try {
      head = await flight.head
    } catch (err) {
      this.#coalescer.forget(flightKey, flight)
      body?.destroy()
      const error = err instanceof GatewayError ? err : new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err })
      return this.#staleOrError(stale, directives, error, status.fwd)
    }

    if (stale !== undefined && ERROR_STATUSES.has(head.status) && mayServeStaleOnError(stale, directives, this.#o.clock.now())) {
      this.#coalescer.forget(flightKey, flight)
      body?.destroy()
      return this.#staleAnswer(stale, status.fwd, head.status)
    }

    const prepared = prepareEntry({
      url: req.key,
      method: 'GET',
      requestHeaders: req.headers,
      request: directives,
      status: head.status,
      headers: head.headers,
      requestTime: head.requestTime,
      responseTime: head.responseTime
    }, req.route)

    const declared = Number(single(head.headers['content-length']))
    let detail = prepared.storable ? undefined : prepared.detail
    if (prepared.storable && Number.isFinite(declared) && declared > this.#o.cache.maxObjectSize) detail = 'too-large'
    const spec = mergeSpec(req.route.key.headers, req.route.key.cookies, prepared.storable ? prepared.varyNames : [])
    const values = variantValues(spec, req.headers)
    flight.varyValues = values
    if (detail !== undefined) {
      // Waiters may not be given this response: each goes to the origin itself, and the
      // next burst does not queue behind a fetch that cannot be shared (hit-for-miss).
      flight.shareable = false
      this.#coalescer.forget(flightKey, flight)
      if (detail !== 'too-large' && this.#o.cache.hitForMiss > 0) this.#uncacheable.set(req.key, now + this.#o.cache.hitForMiss)
      if (stale !== undefined && (detail !== 'too-large')) await this.#deleteVariant(req.key, found.variant ?? variantId(values))
    } else if (prepared.storable) {
      const p = prepared
      this.#o.tasks.run('store', async () => {
        const end = await flight.end
        if (!end.complete || end.body === undefined) return
        const entry: CacheEntry = { ...p.meta, body: end.body, vary: values }
        await this.#put(req.key, variantId(values), entry)
      })
      flight.stored = true
    }

    if (body === null) {
      // The flight failed before we could attach: nothing to stream.
      return { kind: 'error', error: new GatewayError('CG_ERR_ORIGIN_UNREACHABLE'), cacheStatus: { ...status, detail: 'origin-unreachable' }, outcome: 'error' }
    }
    return {
      kind: 'stream',
      status: head.status,
      headers: head.headers,
      body,
      cacheStatus: { ...status, fwdStatus: head.status, ...(flight.stored ? { stored: true } : {}), ...(detail !== undefined ? { detail } : status.detail !== undefined ? { detail: status.detail } : {}) },
      outcome: stale !== undefined ? 'revalidated' : detail === undefined ? 'miss' : 'pass'
    }
  }

  /** Join a flight in progress; undefined when this request may not share its response. */
  async #join (req: CacheRequest, flight: Flight): Promise<Answer | undefined> {
    let head: FlightHead
    try {
      head = await flight.head
    } catch {
      return undefined
    }
    if (!flight.shareable || flight.varyValues === undefined) return undefined
    const spec = { headers: Object.keys(flight.varyValues).filter((k) => !k.startsWith('cookie:')), cookies: Object.keys(flight.varyValues).filter((k) => k.startsWith('cookie:')).map((k) => k.slice(7)) }
    if (!sameVariant(flight.varyValues, variantValues(spec, req.headers))) return undefined
    const body = flight.subscribe()
    if (body === null) return undefined
    return {
      kind: 'stream',
      status: head.status,
      headers: head.headers,
      body,
      cacheStatus: { fwd: 'uri-miss', fwdStatus: head.status, collapsed: true },
      outcome: 'miss'
    }
  }
}
