/**
 * The read-through lifecycle for GET and HEAD: look up, decide, and serve from the store,
 * revalidate, or fetch (coalesced) and store. It asks the pure decisions in cache/ and
 * drives the store and the origin client; it never writes to the client itself; it returns
 * an Answer that http/respond.ts turns into a response.
 */
import { Readable } from 'node:stream'
import { effectiveResponseDirectives, parseCacheControl, SURROGATE_CAPABILITY, type Directives } from '../cache/cache-control.ts'
import type { CacheStatus } from '../cache/cache-status.ts'
import { hasValidators, merge304Headers, notModifiedMatches, validatorHeaders } from '../cache/conditional.ts'
import type { CacheEntry } from '../cache/entry.ts'
import { currentAge, retention } from '../cache/freshness.ts'
import { single } from '../cache/headers.ts'
import { NO_VARIANT, type CacheKey, type VariantId } from '../cache/key.ts'
import { decide, ERROR_STATUSES, mayServeStaleOnError, outlived, refreshAheadDue, requestDirectives, type Decision } from '../cache/policy.ts'
import { prepareEntry } from '../cache/prepare.ts'
import { implicitAllowed, REQUEST_SCOPED, sharedWithCredentials } from '../cache/storable.ts'
import { mergeSpec, sameVariant, variantId, variantValues } from '../cache/vary.ts'
import type { Clock } from '../clock.ts'
import type { CacheConfig, RouteConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import type { OriginClient, OriginResponse } from '../origin/client.ts'
import type { Store } from '../store/store.ts'
import { isStoreBypassed } from '../store/breaker.ts'
import { Coalescer, Flight, type Fetched, type FlightHead } from './coalesce.ts'
import { DecisionLog } from './explain.ts'
import type { Tasks } from './tasks.ts'
import type { Locks } from '../coordination/locks.ts'
import { FillCoordinator, type FillResult } from './fill.ts'
import { Refresher } from './refresh.ts'
import type { Answer, CacheRequest, Found, LifecycleEvent, MissContext } from './types.ts'

export type { Answer, CacheRequest, LifecycleEvent, Outcome } from './types.ts'
import type { Bus } from '../coordination/bus.ts'
import { BoundedMap, type BoundedMapStats } from '../bounded-map.ts'

/** Bounds of the per-key records kept here (URLs are chosen by clients). */
const PER_KEY_BOUNDS = { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 }

/** Fields of the client's request that must not reach the origin on a fetch meant for the cache. */
const CLIENT_CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']
/** The client's validators a miss with no stored response forwards (RFC 9111 §4.3.2); never If-Range or Range. */
const MISS_CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'] as const
/** Answers to a client's conditional request that are that client's alone: relayed, never stored. */
const CONDITIONAL_ONLY = new Set([304, 412])

/** A conditional miss's origin answer, as concurrent identical conditional misses share it. */
type ConditionalMiss =
  | { kind: 'answered', status: number, headers: Record<string, string | string[]> }
  | { kind: 'full' }
  | { kind: 'failed', error: GatewayError }

export interface ReadThroughOptions {
  store: Store
  origin: OriginClient
  clock: Clock
  tasks: Tasks
  cache: CacheConfig
  /** Reports store failures (the cache fails open to the origin). */
  onStoreError: (op: string, err: unknown) => void
  /** Cluster-wide locks: one fill and one refresh per key across instances. */
  locks: Locks
  /** Carries "filled" messages to waiters on other instances. */
  bus: Bus
  /** Channel name for fill messages (prefixed like the store's keys). */
  fillChannel: string
  /** Random source for TTL jitter and refresh-ahead; injectable for tests. */
  random?: () => number
  /** Lifecycle events for metrics. */
  onEvent?: (event: LifecycleEvent) => void
}

/** A revalidation's conditional request: a matching 304 (merged entry), another response, or no response. */
type Conditional =
  | { kind: 'not-modified', entry: CacheEntry, stored: boolean }
  | { kind: 'response', res: OriginResponse, requestTime: number, responseTime: number }
  | { kind: 'failed', error: GatewayError }

/** A miss this instance leads: its flight, the leader's stream of it, and where the fill's outcome goes. */
interface LeadContext extends MissContext {
  flight: Flight
  body: Readable | null
  now: number
  storing: (result: Promise<FillResult>) => void
}

export class ReadThrough {
  readonly #o: ReadThroughOptions
  readonly #coalescer = new Coalescer()
  /** Hit-for-miss: keys recently found uncacheable, until when (ms); bounded (src/bounded-map.ts). */
  readonly #uncacheable = new BoundedMap<string, number>(PER_KEY_BOUNDS)
  /** The last storability decision per key (GET /explain), for the 10,000 most recent keys. */
  readonly #decisions = new DecisionLog(10_000)
  /** Background revalidations and purge refetches. */
  readonly #refresher: Refresher
  /** Conditional revalidations in flight, by flight key, shared by concurrent requests without credentials. */
  readonly #revalidations = new Map<string, Promise<Conditional>>()
  /** Conditional misses in flight, by URL, variant and the client's validators. */
  readonly #conditionalMisses = new Map<string, Promise<ConditionalMiss>>()
  /** Second looks in the store (after a timeout, after a fill), by URL, shared while in progress. */
  readonly #fillLookups = new Map<string, Promise<NonNullable<CacheRequest['lookup']>>>()
  readonly #random: () => number
  /** The cluster fill protocol: who fetches a missing key, and telling the others. */
  readonly #fill: FillCoordinator

  constructor (options: ReadThroughOptions) {
    this.#o = options
    this.#random = options.random ?? Math.random
    this.#fill = new FillCoordinator({
      locks: options.locks,
      bus: options.bus,
      channel: options.fillChannel,
      wait: options.cache.coalesceWait,
      tasks: options.tasks,
      onError: (op, err) => { options.onStoreError(op, err) },
      bounds: PER_KEY_BOUNDS
    })
    this.#refresher = new Refresher({
      host: {
        find: async (req) => await this.#find(req),
        refetch: async (req, found) => await this.#miss({ req, directives: new Map(), found, status: { fwd: 'stale', detail: 'purged' } }),
        revalidate: async (req, found, entry) => await this.#revalidate(req, new Map(), found, entry, 'stale')
      },
      locks: options.locks,
      tasks: options.tasks,
      clock: options.clock,
      onStoreError: (op, err) => { options.onStoreError(op, err) },
      onEvent: (e) => { this.#event(e) }
    })
  }

  /**
   * Fetches a URL from the origin without a client and stores the answer like a miss (a
   * revalidate purge); resolves true when the origin answered. Never rejects.
   */
  async refresh (route: RouteConfig, key: CacheKey, path: string): Promise<boolean> {
    return await this.#refresher.refetch(route, key, path)
  }

  /** Subscribes to fill messages; call once before serving. */
  async start (): Promise<void> {
    await this.#fill.start()
  }

  #event (e: LifecycleEvent): void {
    this.#o.onEvent?.(e)
  }

  /** Why the last origin responses were or were not stored (read by /explain). */
  get decisions (): DecisionLog {
    return this.#decisions
  }

  /** Sizes of the per-key records (bounded; read by the soak test and operators). */
  memory (): { hitForMiss: BoundedMapStats, ownFills: BoundedMapStats, decisions: BoundedMapStats } {
    return { hitForMiss: this.#uncacheable.stats(), ownFills: this.#fill.ownFills, decisions: this.#decisions.stats() }
  }

  async handle (req: CacheRequest): Promise<Answer> {
    const now = this.#o.clock.now()
    const directives = requestDirectives(parseCacheControl(req.headers['cache-control']), single(req.headers.pragma), req.route.ignoreClientNoCache)
    let found = await this.#find(req, req.lookup)
    if (found.storeDetail === 'store-unavailable' && this.#coalescer.flights(req.key).length === 0) {
      // A lookup past its deadline is, on a busy machine, usually one Redis answered late: one
      // more look (shared by the requests in the same case) before this instance fetches a key
      // another may have stored or be fetching. A local flight is joined without looking.
      found = await this.#find(req, await this.#sharedLookup(req.key))
    }

    if (found.entry !== null && req.headers.authorization !== undefined && !sharedWithCredentials(effectiveResponseDirectives(found.entry.headers).directives)) {
      // RFC 9211 §2.2 fwd=request: this request's credentials send it to the origin.
      if (directives.has('only-if-cached')) {
        return { kind: 'error', error: new GatewayError('CG_ERR_ONLY_IF_CACHED'), cacheStatus: { fwd: 'request', detail: 'only-if-cached' }, outcome: 'error' }
      }
      return await this.#missOrConditional(req, directives, { ...found, entry: null }, { fwd: 'request', detail: 'authorization' })
    }
    if (found.entry !== null) {
      const decision = decide(found.entry, directives, now)
      return await this.#reuse(req, directives, found, decision)
    }

    if (directives.has('only-if-cached')) {
      // RFC 9111 §5.2.1.7: no stored response may be used, so 504.
      return { kind: 'error', error: new GatewayError('CG_ERR_ONLY_IF_CACHED'), cacheStatus: { fwd: 'miss', detail: 'only-if-cached' }, outcome: 'error' }
    }
    const fwd = found.vary === null || found.variant === NO_VARIANT ? 'uri-miss' : 'vary-miss'
    return await this.#missOrConditional(req, directives, found, { fwd, ...(found.storeDetail !== undefined ? { detail: found.storeDetail } : {}) })
  }

  /** A miss with no stored response: with the client's validators when it sent some. */
  async #missOrConditional (req: CacheRequest, directives: Directives, found: Found, status: CacheStatus): Promise<Answer> {
    if (!MISS_CONDITIONALS.some((name) => req.forward[name] !== undefined)) return await this.#miss({ req, directives, found, status })
    return await this.#conditionalMiss(req, directives, found, status)
  }

  /**
   * RFC 9111 §4.3.2: with nothing stored, the client's own conditional request may go to the
   * origin. A 304 or 412 answers that client (and those sending the same validators at the same
   * time, who share the request) and is never stored; any other answer is handled as a miss
   * that already has its response: stored when allowed, and joined by the waiters.
   */
  async #conditionalMiss (req: CacheRequest, directives: Directives, found: Found, status: CacheStatus): Promise<Answer> {
    const validators = MISS_CONDITIONALS.map((name) => single(req.forward[name]) ?? '').join('\n')
    const id = `${req.key}\n${found.variant ?? '?'}\n${validators}`
    const shareable = req.headers.authorization === undefined && !directives.has('no-store')
    const pending = shareable ? this.#conditionalMisses.get(id) : undefined
    if (pending !== undefined) {
      this.#event({ type: 'collapsed', route: req.route.name })
      const result = await pending
      if (result.kind === 'answered') {
        return { kind: 'stream', status: result.status, headers: result.headers, body: Readable.from([]), cacheStatus: { ...status, fwdStatus: result.status, collapsed: true }, outcome: 'miss' }
      }
      if (result.kind === 'failed') return this.#staleOrError(undefined, directives, result.error, status.fwd)
      return await this.#miss({ req, directives, found, status })
    }
    let settle: (result: ConditionalMiss) => void = () => {}
    if (shareable) {
      const shared = new Promise<ConditionalMiss>((resolve) => { settle = resolve })
      this.#conditionalMisses.set(id, shared)
      const forget = (): void => { if (this.#conditionalMisses.get(id) === shared) this.#conditionalMisses.delete(id) }
      shared.then(forget, forget)
    }
    const requestTime = this.#o.clock.now()
    let res: OriginResponse
    try {
      res = await this.#o.origin.request(req.route, { method: 'GET', path: req.path, headers: this.#forFetch(req.forward, MISS_CONDITIONALS), onInfo: req.interim })
      this.#event({ type: 'origin', route: req.route.name, status: res.status, seconds: (this.#o.clock.now() - requestTime) / 1000 })
    } catch (err) {
      this.#event({ type: 'origin', route: req.route.name, status: 'error', seconds: (this.#o.clock.now() - requestTime) / 1000 })
      const error = err instanceof GatewayError ? err : new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err })
      settle({ kind: 'failed', error })
      return this.#staleOrError(undefined, directives, error, status.fwd)
    }
    if (CONDITIONAL_ONLY.has(res.status)) {
      settle({ kind: 'answered', status: res.status, headers: res.headers })
      return { kind: 'stream', status: res.status, headers: res.headers, body: res.body, cacheStatus: { ...status, fwdStatus: res.status }, outcome: 'miss' }
    }
    // #miss registers its flight before its first await: waiters released below join it.
    const answer = this.#miss({ req, directives, found, status, already: { res, requestTime, responseTime: this.#o.clock.now() } })
    settle({ kind: 'full' })
    return await answer
  }

  /** The stored entry for this request's variant, verified against URL and variant values. */
  async #find (req: CacheRequest, prefetched?: CacheRequest['lookup']): Promise<Found> {
    const { route } = req
    let lookup
    try {
      if (prefetched !== undefined && 'error' in prefetched) throw prefetched.error
      lookup = prefetched !== undefined ? prefetched.result : await this.#o.store.lookup(req.key)
    } catch (err) {
      this.#o.onStoreError('lookup', err)
      return { entry: null, vary: null, variant: undefined, values: undefined, storeDetail: storeDetail(err) }
    }
    if (lookup.vary === null) return { entry: null, vary: null, variant: undefined, values: undefined, storeDetail: undefined }
    const spec = mergeSpec(route.key.headers, route.key.cookies, lookup.vary)
    const values = variantValues(spec, req.forward)
    const variant = variantId(values)
    let entry = variant === NO_VARIANT ? lookup.entry : null
    if (variant !== NO_VARIANT) {
      try {
        entry = await this.#o.store.getVariant(req.key, variant)
      } catch (err) {
        this.#o.onStoreError('get', err)
        return { entry: null, vary: lookup.vary, variant, values, storeDetail: storeDetail(err) }
      }
    }
    // Never answer with a response stored for another URL or another variant.
    if (entry !== null && (entry.url !== req.key || !sameVariant(entry.vary, values))) entry = null
    if (entry !== null && outlived(entry, this.#o.clock.now(), route.keep)) entry = null
    return { entry, vary: lookup.vary, variant, values, storeDetail: undefined }
  }

  async #reuse (req: CacheRequest, directives: Directives, found: Found, decision: Decision): Promise<Answer> {
    const entry = found.entry as CacheEntry
    if (decision.kind === 'fresh') {
      // Probabilistic early refresh keeps a hot key from ever going stale.
      if (req.route.refreshAhead && refreshAheadDue(entry, decision.ttl, this.#random())) this.#refresher.inBackground(req, entry)
      return { kind: 'entry', entry, age: decision.age, cacheStatus: { hit: true, ttl: decision.ttl / 1000 }, outcome: 'hit' }
    }
    if (decision.kind === 'stale') {
      if (decision.refresh) this.#refresher.inBackground(req, entry)
      return { kind: 'entry', entry, age: decision.age, cacheStatus: { hit: true, fwd: 'stale', ttl: decision.ttl / 1000, detail: decision.detail }, outcome: 'stale' }
    }
    // Must revalidate (or refetch) in the foreground.
    if (directives.has('only-if-cached')) {
      const fwd = decision.detail.startsWith('request') ? 'request' : 'stale'
      return { kind: 'error', error: new GatewayError('CG_ERR_ONLY_IF_CACHED'), cacheStatus: { fwd, detail: 'only-if-cached' }, outcome: 'error' }
    }
    return await this.#revalidate(req, directives, found, entry, decision.detail)
  }

  /**
   * RFC 9111 §4.3: a conditional request when the entry has validators, else a full fetch that
   * replaces it. Concurrent revalidations of one URL and variant by requests without
   * credentials share one conditional request (a burst of forced refreshes, or of requests
   * just past expiry, is one origin request); each then answers by its own directives.
   */
  async #revalidate (req: CacheRequest, directives: Directives, found: Found, entry: CacheEntry, detail: string): Promise<Answer> {
    const fwd = detail.startsWith('request') ? 'request' : 'stale'
    if (!hasValidators(entry)) return await this.#miss({ req, directives, found, status: { fwd, detail }, stale: entry })
    const id = `${req.key}\n${found.variant ?? '?'}`
    const shareable = implicitAllowed(req.headers, req.route)
    const pending = shareable ? this.#revalidations.get(id) : undefined
    if (pending !== undefined) {
      this.#event({ type: 'collapsed', route: req.route.name })
      const result = await pending
      if (result.kind === 'not-modified') {
        return { kind: 'entry', entry: result.entry, age: currentAge(result.entry, this.#o.clock.now()), cacheStatus: { fwd, fwdStatus: 304, collapsed: true }, outcome: 'revalidated' }
      }
      if (result.kind === 'failed') return this.#staleOrError(entry, directives, result.error, fwd)
      if (ERROR_STATUSES.has(result.res.status) && mayServeStaleOnError(entry, directives, this.#o.clock.now())) return this.#staleAnswer(entry, fwd, result.res.status)
      // The leader streams the new response through a flight (joined here) or served stale.
      return await this.#miss({ req, directives, found, status: { fwd, detail }, stale: entry })
    }
    const conditional = this.#conditional(req, found, entry)
    if (shareable) {
      this.#revalidations.set(id, conditional)
      const forget = (): void => { if (this.#revalidations.get(id) === conditional) this.#revalidations.delete(id) }
      conditional.then(forget, forget)
    }
    const result = await conditional
    if (result.kind === 'not-modified') {
      const merged = result.entry
      return { kind: 'entry', entry: merged, age: currentAge(merged, this.#o.clock.now()), cacheStatus: { fwd, fwdStatus: 304, ...(result.stored ? { stored: true } : {}) }, outcome: 'revalidated' }
    }
    if (result.kind === 'failed') return this.#staleOrError(entry, directives, result.error, fwd)
    const { res } = result
    if (ERROR_STATUSES.has(res.status) && mayServeStaleOnError(entry, directives, this.#o.clock.now())) {
      res.body.resume()
      return this.#staleAnswer(entry, fwd, res.status)
    }
    // A full response replaces the entry: treat it like a miss that already has its response.
    return await this.#miss({ req, directives, found, status: { fwd, detail }, stale: entry, already: { res, requestTime: result.requestTime, responseTime: result.responseTime } })
  }

  /** The conditional request of a revalidation and, on a matching 304, the merged entry. Never rejects. */
  async #conditional (req: CacheRequest, found: Found, entry: CacheEntry): Promise<Conditional> {
    const requestTime = this.#o.clock.now()
    let res: OriginResponse
    try {
      res = await this.#o.origin.request(req.route, {
        method: 'GET',
        path: req.path,
        headers: { ...this.#forFetch(req.forward), ...validatorHeaders(entry) }
      })
      this.#event({ type: 'origin', route: req.route.name, status: res.status, seconds: (this.#o.clock.now() - requestTime) / 1000 })
    } catch (err) {
      this.#event({ type: 'origin', route: req.route.name, status: 'error', seconds: (this.#o.clock.now() - requestTime) / 1000 })
      return { kind: 'failed', error: err instanceof GatewayError ? err : new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err }) }
    }
    const responseTime = this.#o.clock.now()
    if (res.status === 304) {
      res.body.resume()
      // RFC 9111 §4.3.4: a 304 whose validator names another representation updates nothing;
      // it still answered the conditional request made with this entry's validators, so the
      // entry is served as stored. A 304 never reaches a client that did not ask for one.
      if (!notModifiedMatches(entry.headers, res.headers)) return { kind: 'not-modified', entry, stored: false }
      const merged = await this.#merge304(req, found, entry, res.headers, requestTime, responseTime)
      return { kind: 'not-modified', entry: merged, stored: merged !== entry }
    }
    return { kind: 'response', res, requestTime, responseTime }
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
    return { kind: 'error', error, cacheStatus: { ...(fwd !== undefined ? { fwd } : {}), detail: error.code === 'CG_ERR_ORIGIN_TIMEOUT' ? 'origin-timeout' : error.code === 'CG_ERR_ORIGIN_BAD_RESPONSE' ? 'origin-bad-response' : 'origin-unreachable' }, outcome: 'error' }
  }

  /** Headers of a fetch for the cache: the client's conditionals removed (except those kept), Surrogate-Capability set. */
  #forFetch (forward: Record<string, string | string[]>, keep: readonly string[] = []): Record<string, string | string[]> {
    const out = { ...forward }
    for (const name of CLIENT_CONDITIONALS) if (!keep.includes(name)) delete out[name]
    // This cache honours Surrogate-Control (cache/cache-control.ts); a client's own claim is replaced.
    out['surrogate-capability'] = SURROGATE_CAPABILITY
    return out
  }

  /** RFC 9111 §4.3.4: freshen the stored response with the 304's fields; the body is kept. */
  async #merge304 (req: CacheRequest, found: Found, entry: CacheEntry, headers: Record<string, string | string[]>, requestTime: number, responseTime: number): Promise<CacheEntry> {
    const merged = merge304Headers(entry.headers, headers, responseTime)
    const prepared = prepareEntry({
      url: req.key, method: 'GET', requestHeaders: req.headers, request: new Map(), status: entry.status, headers: merged, requestTime, responseTime
    }, req.route)
    this.#decisions.record(req.key, {
      at: responseTime,
      status: entry.status,
      stored: prepared.storable,
      detail: prepared.storable ? undefined : prepared.detail,
      freshnessSource: prepared.storable ? prepared.freshness.source : undefined,
      variant: found.variant ?? NO_VARIANT
    }, entry.vary)
    if (!prepared.storable) {
      // The origin now forbids storing it (no-store, private...): drop it. A refusal that
      // concerns only this request (credentials) leaves it to the clients it serves.
      if (!REQUEST_SCOPED.has(prepared.detail)) await this.#deleteVariant(req.key, found.variant ?? NO_VARIANT)
      return entry
    }
    const next: CacheEntry = { ...prepared.meta, body: entry.body, vary: entry.vary }
    await this.#put(req.key, found.variant ?? NO_VARIANT, next, req.route.keep)
    return next
  }

  /** Stores an entry; a failed write is reported and dropped, never retried in the request path. */
  async #put (url: CacheKey, variant: VariantId, entry: CacheEntry, keep: number): Promise<boolean> {
    const ttlMs = Math.max(1, Math.ceil(retention(entry, keep)))
    try {
      await this.#o.store.put(url, variant, entry, { ttlMs, maxVariants: this.#o.cache.maxVariants })
      return true
    } catch (err) {
      this.#o.onStoreError('put', err)
      return false
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
   * Fetch from the origin (coalesced with other misses for the same URL and variant),
   * stream to the client, and store the body once it is complete.
   */
  async #miss (ctx: MissContext): Promise<Answer> {
    const { req, directives, found, already } = ctx
    const now = this.#o.clock.now()
    // One fill lock per URL when the variant is unknown (a lookup that failed, a URL never seen)
    // or empty (no Vary, no keyed headers: the URL has one variant): an instance whose lookup
    // timed out and one whose lookup found the URL's empty Vary record take the same lock.
    const lockVariant = found.variant === undefined || found.variant === NO_VARIANT ? '?' : found.variant
    const hfm = this.#uncacheable.get(req.key)
    const hitForMiss = hfm !== undefined && hfm > now
    if (hfm !== undefined && !hitForMiss) this.#uncacheable.delete(req.key)
    // Requests with credentials, or that must not share, fetch alone.
    let alone = hitForMiss || req.headers.authorization !== undefined || directives.has('no-store')

    let token: string | undefined
    // A response already in hand (a revalidation's full answer) needs no gate, but is offered
    // to other misses for the same key like any flight.
    if (!alone && already === undefined) {
      // A local flight of this URL is always joined when its variant matches, whatever the
      // store said (a lookup that timed out knows no variant): at most one fetch per instance.
      const tried = new Set<Flight>()
      const local = await this.#joinLocal(req, tried)
      if (local !== undefined) return local
      if (tried.size === 0) {
        // One fetch per key across instances: the first local miss asks the cluster lock;
        // the other local misses wait on the same answer.
        const { gate: g, creator } = await this.#fill.gate(req.key, lockVariant)
        if (creator && g.kind === 'lead') {
          token = g.token
        } else {
          const joined = await this.#joinLocal(req, tried)
          if (joined !== undefined) return joined
          if (g.kind === 'filled' && g.stored === false) {
            // The other instance found it uncacheable: do not queue the next burst behind it.
            alone = true
            if (this.#o.cache.hitForMiss > 0) this.#uncacheable.set(req.key, now + this.#o.cache.hitForMiss)
          } else {
            const served = await this.#servedAfterFill(req, directives)
            if (served !== undefined) return served
            // Nothing to serve: the first waiter here fetches, the others join its flight.
            const rejoined = await this.#joinLocal(req, tried)
            if (rejoined !== undefined) return rejoined
          }
        }
      }
      // Without the fill lock, another local miss may have started a flight while this one
      // awaited: join it. From the last (synchronous) look to the flight's registration below
      // nothing awaits, so concurrent misses of one instance start one flight between them.
      if (token === undefined) {
        for (let next = this.#untried(req, tried); next !== undefined; next = this.#untried(req, tried)) {
          tried.add(next)
          const joined = await this.#join(req, next)
          if (joined !== undefined) return joined
        }
      }
    }

    const start = already !== undefined
      ? async () => await Promise.resolve(already)
      : async () => await this.#fetch(req)
    const flight = new Flight(start, this.#o.cache.maxObjectSize)
    const body = flight.subscribe()
    if (!alone) this.#coalescer.add(req.key, flight)

    // The fill lock is released, and waiters elsewhere told, once the store write is done.
    const settleFill = token !== undefined ? this.#fill.lead(req.key, lockVariant, token) : undefined
    try {
      return await this.#lead({ ...ctx, flight, body, now, storing: (result) => settleFill?.(result) })
    } finally {
      settleFill?.(Promise.resolve('failed'))
    }
  }

  /** Waits for the origin's answer to the flight this request leads, stores it when allowed, and answers. */
  async #lead (ctx: LeadContext): Promise<Answer> {
    const { req, directives, found, status, stale, flight, body, now, storing } = ctx
    let head: FlightHead
    try {
      head = await flight.head
    } catch (err) {
      this.#coalescer.forget(req.key, flight)
      body?.destroy()
      const error = err instanceof GatewayError ? err : new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err })
      return this.#staleOrError(stale, directives, error, status.fwd)
    }

    if (stale !== undefined && ERROR_STATUSES.has(head.status) && mayServeStaleOnError(stale, directives, this.#o.clock.now())) {
      this.#coalescer.forget(req.key, flight)
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
    const values = variantValues(spec, req.forward)
    flight.varyValues = values
    const decision = {
      at: head.responseTime,
      status: head.status,
      stored: detail === undefined,
      detail,
      freshnessSource: prepared.storable ? prepared.freshness.source : undefined,
      variant: variantId(values)
    }
    this.#decisions.record(req.key, decision, values)
    if (detail !== undefined) {
      // Waiters may not be given this response: each goes to the origin itself, and the
      // next burst does not queue behind a fetch that cannot be shared (hit-for-miss).
      flight.shareable = false
      this.#coalescer.forget(req.key, flight)
      // Only the response's own refusal says something about the URL: a refusal that concerns
      // this request (credentials, request no-store), an origin error or a body too large
      // neither marks the URL uncacheable nor deletes the stored response others rely on
      // (a failed revalidation leaves it for stale-if-error).
      const aboutUrl = detail !== 'too-large' && !REQUEST_SCOPED.has(detail) && head.status < 500
      storing(Promise.resolve(aboutUrl ? 'uncacheable' : 'failed'))
      if (aboutUrl && this.#o.cache.hitForMiss > 0) this.#uncacheable.set(req.key, now + this.#o.cache.hitForMiss)
      if (stale !== undefined && aboutUrl) await this.#deleteVariant(req.key, found.variant ?? variantId(values))
    } else if (prepared.storable && status.detail !== 'store-bypassed') {
      // (While the store is bypassed the put would be refused unsent: not attempted, not claimed.)
      const jitter = req.route.ttlJitter
      // TTL jitter only shortens: entries stored together do not all expire together.
      const meta = jitter > 0 ? { ...prepared.meta, freshness: Math.floor(prepared.meta.freshness * (1 - this.#random() * jitter / 100)) } : prepared.meta
      const stored = (async () => {
        const end = await flight.end
        const put = end.complete && end.body !== undefined && await this.#put(req.key, variantId(values), { ...meta, body: end.body, vary: values }, req.route.keep)
        if (!put) {
          const why = !end.complete ? 'body-incomplete' : end.body === undefined ? 'too-large' : 'store-failed'
          this.#decisions.record(req.key, { ...decision, stored: false, detail: why }, values)
        }
        return put
      })()
      storing(stored.then((ok): FillResult => (ok ? 'stored' : 'failed')))
      this.#o.tasks.run('store', async () => await stored)
      flight.stored = true
      flight.writing = stored
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

  async #fetch (req: CacheRequest): Promise<Fetched> {
    const started = this.#o.clock.now()
    try {
      const res = await this.#o.origin.request(req.route, { method: 'GET', path: req.path, headers: this.#forFetch(req.forward), onInfo: req.interim })
      const responseTime = this.#o.clock.now()
      this.#event({ type: 'origin', route: req.route.name, status: res.status, seconds: (responseTime - started) / 1000 })
      return { res, requestTime: started, responseTime }
    } catch (err) {
      this.#event({ type: 'origin', route: req.route.name, status: 'error', seconds: (this.#o.clock.now() - started) / 1000 })
      throw err
    }
  }

  /**
   * One store lookup per URL at a time for second looks (after a lookup past its deadline, or
   * for the waiters a fill releases): they all look at once, and a burst of identical lookups
   * on a busy instance is what makes them miss their deadline.
   */
  async #sharedLookup (url: CacheKey): Promise<NonNullable<CacheRequest['lookup']>> {
    let pending = this.#fillLookups.get(url)
    if (pending === undefined) {
      const started = this.#o.store.lookup(url).then((result) => ({ result }), (error: unknown) => ({ error }))
      this.#fillLookups.set(url, started)
      const forget = (): void => { if (this.#fillLookups.get(url) === started) this.#fillLookups.delete(url) }
      started.then(forget, forget)
      pending = started
    }
    return await pending
  }

  /** After another instance's fill: the stored entry when it may answer this request. */
  async #servedAfterFill (req: CacheRequest, directives: Directives): Promise<Answer | undefined> {
    let found = await this.#find(req, await this.#sharedLookup(req.key))
    // A lookup past its deadline right after a fill is usually a busy moment, not an outage:
    // one more look before this instance fetches it too.
    if (found.storeDetail === 'store-unavailable') found = await this.#find(req, await this.#sharedLookup(req.key))
    if (found.entry === null) return undefined
    const d = decide(found.entry, directives, this.#o.clock.now())
    if (d.kind === 'revalidate') return undefined
    this.#event({ type: 'collapsed', route: req.route.name })
    return { kind: 'entry', entry: found.entry, age: d.age, cacheStatus: { fwd: 'uri-miss', collapsed: true }, outcome: 'miss' }
  }

  /**
   * Joins this instance's flight of the URL whose variant matches this request's (tried in
   * order, including flights started while waiting); `tried` collects the flights that could
   * not be joined.
   */
  async #joinLocal (req: CacheRequest, tried: Set<Flight>): Promise<Answer | undefined> {
    for (let next = this.#untried(req, tried); next !== undefined; next = this.#untried(req, tried)) {
      tried.add(next)
      const answer = await this.#join(req, next)
      if (answer !== undefined) return answer
    }
    return undefined
  }

  /** The oldest local flight of the URL this request has not tried to join yet. */
  #untried (req: CacheRequest, tried: ReadonlySet<Flight>): Flight | undefined {
    return this.#coalescer.flights(req.key).find((f) => !tried.has(f))
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
    if (!sameVariant(flight.varyValues, variantValues(spec, req.forward))) return undefined
    const body = flight.subscribe()
    if (body === null) return undefined
    this.#event({ type: 'collapsed', route: req.route.name })
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

/**
 * Cache-Status detail for a store call that failed: `store-bypassed` when a circuit breaker
 * refused it unsent, `store-unavailable` when the store was asked and failed (timeout,
 * connection lost, refused).
 */
function storeDetail (err: unknown): string {
  return isStoreBypassed(err) ? 'store-bypassed' : 'store-unavailable'
}
