/**
 * The read-through lifecycle for GET and HEAD: look up, decide, and serve from the store,
 * revalidate, or fetch (coalesced) and store. It asks the pure decisions in cache/ and
 * drives the store and the origin client; it never writes to the client itself; it returns
 * an Answer that http/respond.ts turns into a response.
 */
import { effectiveResponseDirectives, parseCacheControl, type Directives } from '../cache/cache-control.ts'
import type { CacheStatus } from '../cache/cache-status.ts'
import type { CacheEntry } from '../cache/entry.ts'
import { single } from '../cache/headers.ts'
import { NO_VARIANT, type CacheKey } from '../cache/key.ts'
import { decide, ERROR_STATUSES, mayServeStaleOnError, refreshAheadDue, requestDirectives, type Decision } from '../cache/policy.ts'
import { sharedWithCredentials } from '../cache/storable.ts'
import { variantId } from '../cache/vary.ts'
import type { Clock } from '../clock.ts'
import type { CacheConfig, RouteConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import type { OriginClient } from '../origin/client.ts'
import type { Store } from '../store/store.ts'
import type { Bus } from '../coordination/bus.ts'
import type { Locks } from '../coordination/locks.ts'
import type { BoundedMapStats } from '../bounded-map.ts'
import { collapsedAnswer, forFetch, gatewayError, onlyIfCached, passedOutcome, sharedEntryMeta, staleAnswer, staleOrError } from './answers.ts'
import { Coalescer, Flight, type Fetched, type FlightHead } from './coalesce.ts'
import { ConditionalMisses, isConditional } from './conditional-miss.ts'
import { DecisionLog } from './explain.ts'
import { FillCoordinator, type FillResult } from './fill.ts'
import { Finder } from './lookup.ts'
import { OriginFetcher } from './origin-fetch.ts'
import { adoptPost, type AdoptedPost, type PostRequest } from './post-store.ts'
import { Refresher } from './refresh.ts'
import { Revalidator } from './revalidate.ts'
import { StoreWriter } from './store-writer.ts'
import type { Tasks } from './tasks.ts'
import type { Answer, CacheRequest, Found, LeadContext, LifecycleEvent, MissContext } from './types.ts'

export type { Answer, CacheRequest, LifecycleEvent, Outcome } from './types.ts'

/** Bounds of the per-key records kept here (URLs are chosen by clients). */
const PER_KEY_BOUNDS = { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 }

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

export class ReadThrough {
  readonly #o: ReadThroughOptions
  readonly #coalescer = new Coalescer()
  /** The last storability decision per key (GET /explain), for the 10,000 most recent keys. */
  readonly #decisions = new DecisionLog(10_000)
  /** Background revalidations and purge refetches. */
  readonly #refresher: Refresher
  readonly #random: () => number
  /** Lookups: the stored entry for a request's variant, and shared second looks. */
  readonly #finder: Finder
  readonly #fetcher: OriginFetcher
  /** Whether a response may be stored, and the store writes and deletes. */
  readonly #writer: StoreWriter
  readonly #revalidator: Revalidator
  readonly #conditionalMisses: ConditionalMisses
  /** The cluster fill protocol: who fetches a missing key, and telling the others. */
  readonly #fill: FillCoordinator

  constructor (options: ReadThroughOptions) {
    this.#o = options
    this.#random = options.random ?? Math.random
    const onEvent = (e: LifecycleEvent): void => { this.#event(e) }
    const miss = async (ctx: MissContext): Promise<Answer> => await this.#miss(ctx)
    this.#finder = new Finder({ store: options.store, clock: options.clock, onStoreError: options.onStoreError })
    this.#fetcher = new OriginFetcher({ origin: options.origin, clock: options.clock, onEvent })
    this.#writer = new StoreWriter({ store: options.store, cache: options.cache, tasks: options.tasks, decisions: this.#decisions, onStoreError: options.onStoreError, random: this.#random, bounds: PER_KEY_BOUNDS })
    this.#revalidator = new Revalidator({ fetcher: this.#fetcher, writer: this.#writer, decisions: this.#decisions, clock: options.clock, miss, onEvent })
    this.#conditionalMisses = new ConditionalMisses({ fetcher: this.#fetcher, clock: options.clock, miss, onEvent })
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
        find: async (req) => await this.#finder.find(req),
        refetch: async (req, found) => await this.#miss({ req, directives: new Map(), found, status: { fwd: 'stale', detail: 'purged' } }),
        revalidate: async (req, found, entry) => await this.#revalidator.revalidate(req, new Map(), found, entry, 'stale')
      },
      locks: options.locks,
      tasks: options.tasks,
      clock: options.clock,
      onStoreError: (op, err) => { options.onStoreError(op, err) },
      onEvent
    })
  }

  /**
   * Fetches a URL from the origin without a client and stores the answer like a miss (a
   * revalidate purge); resolves true when the origin answered. Never rejects.
   */
  async refresh (route: RouteConfig, key: CacheKey, path: string): Promise<boolean> {
    return await this.#refresher.refetch(route, key, path)
  }

  /** A POST's response, once its §4.4 invalidation is done: kept as its URL's GET response when it qualifies (post-store.ts). */
  adoptPost (req: PostRequest, fetched: Fetched): AdoptedPost {
    return adoptPost({ writer: this.#writer, maxObjectSize: this.#o.cache.maxObjectSize }, req, fetched)
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
    return { hitForMiss: this.#writer.stats(), ownFills: this.#fill.ownFills, decisions: this.#decisions.stats() }
  }

  async handle (req: CacheRequest): Promise<Answer> {
    const now = this.#o.clock.now()
    const directives = requestDirectives(parseCacheControl(req.headers['cache-control']), single(req.headers.pragma), req.route.ignoreClientNoCache)
    let found = await this.#finder.find(req, req.lookup)
    if (found.storeDetail === 'store-unavailable' && this.#coalescer.flights(req.key).length === 0) {
      // A lookup past its deadline is, on a busy machine, usually one Redis answered late: one
      // more look (shared by the requests in the same case) before this instance fetches a key
      // another may have stored or be fetching. A local flight is joined without looking.
      found = await this.#finder.lookAgain(req)
    }

    if (found.entry !== null && req.headers.authorization !== undefined && !sharedWithCredentials(effectiveResponseDirectives(found.entry.headers).directives)) {
      // RFC 9211 §2.2 fwd=request: this request's credentials send it to the origin.
      if (directives.has('only-if-cached')) {
        return onlyIfCached('request')
      }
      return await this.#missOrConditional(req, directives, { ...found, entry: null }, { fwd: 'request', detail: 'authorization' })
    }
    if (found.entry !== null) {
      const decision = decide(found.entry, directives, now)
      return await this.#reuse(req, directives, found, decision)
    }

    if (directives.has('only-if-cached')) {
      // RFC 9111 §5.2.1.7: no stored response may be used, so 504.
      return onlyIfCached('miss')
    }
    const fwd = found.vary === null || found.variant === NO_VARIANT ? 'uri-miss' : 'vary-miss'
    return await this.#missOrConditional(req, directives, found, { fwd, ...(found.storeDetail !== undefined ? { detail: found.storeDetail } : {}) })
  }

  /** A miss with no stored response: with the client's validators when it sent some. */
  async #missOrConditional (req: CacheRequest, directives: Directives, found: Found, status: CacheStatus): Promise<Answer> {
    if (!isConditional(req)) return await this.#miss({ req, directives, found, status })
    return await this.#conditionalMisses.handle(req, directives, found, status)
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
      return onlyIfCached(decision.detail.startsWith('request') ? 'request' : 'stale')
    }
    return await this.#revalidator.revalidate(req, directives, found, entry, decision.detail)
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
    // Requests with credentials, or that must not share, fetch alone.
    let alone = this.#writer.uncacheable(req.key, now) || req.headers.authorization !== undefined || directives.has('no-store')

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
            this.#writer.markUncacheable(req.key, now)
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
        for (let next = this.#coalescer.untried(req.key, tried); next !== undefined; next = this.#coalescer.untried(req.key, tried)) {
          tried.add(next)
          const joined = await this.#join(req, next)
          if (joined !== undefined) return joined
        }
      }
    }

    const start = already !== undefined
      ? async () => await Promise.resolve(already)
      : async () => await this.#fetcher.get(req, forFetch(req.forward), req.interim)
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
      return staleOrError(stale, directives, gatewayError(err), status.fwd, this.#o.clock.now())
    }

    if (stale !== undefined && ERROR_STATUSES.has(head.status) && mayServeStaleOnError(stale, directives, this.#o.clock.now())) {
      this.#coalescer.forget(req.key, flight)
      body?.destroy()
      return staleAnswer(stale, status.fwd, this.#o.clock.now(), head.status)
    }

    const admission = this.#writer.admit({ req, directives, head, flight, now, bypassed: status.detail === 'store-bypassed' })
    flight.varyValues = admission.values
    // Waiters are answered like the stored entry once the body is complete (coalesce.ts).
    if (admission.kind !== 'refused') flight.answerAs(sharedEntryMeta(req, directives, head, admission.values))
    const detail = admission.kind === 'refused' ? admission.detail : undefined
    if (admission.kind === 'refused') {
      // Waiters may not be given this response: each goes to the origin itself.
      flight.shareable = false
      this.#coalescer.forget(req.key, flight)
      storing(Promise.resolve(admission.aboutUrl ? 'uncacheable' : 'failed'))
      if (stale !== undefined && admission.aboutUrl) await this.#writer.deleteVariant(req.key, found.variant ?? variantId(admission.values))
    } else if (admission.kind === 'storing') {
      storing(admission.write.then((ok): FillResult => (ok ? 'stored' : 'failed')))
      // Claimed only while the store is not known to be failing (the write is still to come).
      flight.stored = !this.#writer.failing && status.detail !== 'store-unavailable'
      flight.writing = admission.write
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
      outcome: passedOutcome(stale !== undefined, head.status, detail)
    }
  }

  /** After another instance's fill: the stored entry when it may answer this request. */
  async #servedAfterFill (req: CacheRequest, directives: Directives): Promise<Answer | undefined> {
    // A lookup past its deadline right after a fill is usually a busy moment, not an outage:
    // one more look before this instance fetches it too.
    const found = await this.#finder.lookAgain(req, 2)
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
    for (let next = this.#coalescer.untried(req.key, tried); next !== undefined; next = this.#coalescer.untried(req.key, tried)) {
      tried.add(next)
      const answer = await this.#join(req, next)
      if (answer !== undefined) return answer
    }
    return undefined
  }

  /** Join a flight in progress; undefined when this request may not share its response. */
  async #join (req: CacheRequest, flight: Flight): Promise<Answer | undefined> {
    const shared = await flight.share(req.forward)
    if (shared === undefined) return undefined
    this.#event({ type: 'collapsed', route: req.route.name })
    return collapsedAnswer(shared, this.#o.clock.now())
  }
}
