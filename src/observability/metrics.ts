/**
 * Prometheus metrics, one Registry per gateway (tests run several gateways in one process, so
 * nothing goes to prom-client's global registry). Everything is counted from the events the
 * gateway already produces: one RequestOutcome per request, the read-through's lifecycle
 * events, store calls through MeteredStore, and purges reported by the purge engine.
 *
 * Labels are bounded: route names from routes.yaml (never URLs), the six outcomes, origin
 * status codes, store operation names and purge kinds. The names are a contract with
 * deploy/grafana and deploy/prometheus (test/deploy/manifests.test.ts checks them).
 *
 * With worker processes the primary sums the workers' registries (prom-client's
 * AggregatorRegistry); each metric says how it aggregates (`aggregator`).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { CacheEntry } from '../cache/entry.ts'
import { ENTRY_PROBLEMS, type EntryProblem } from '../cache/entry-check.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'
import type { LifecycleEvent } from '../lifecycle/read-through.ts'
import type { InvalidEntryListener, PutOptions, Store, StoreLookup } from '../store/store.ts'
import type { RequestOutcome } from './events.ts'
import { TallyCounter, TallyHistogram, type CounterSlot, type HistogramSlot } from './tallies.ts'

/** What a purge named; the label of cachegate_purges_total and cachegate_purged_entries_total. */
export type PurgeKind = 'url' | 'prefix' | 'tag' | 'host' | 'all'

/** Store operations as labelled in cachegate_store_duration_seconds and cachegate_store_errors_total. */
export type StoreOp =
  | 'lookup' | 'get' | 'put' | 'delete' | 'delete_url' | 'mark_stale' | 'tag_index' | 'prefix_index' | 'origins'
  /** Coordination through Redis (fill and refresh locks, fill messages): not Store calls, but the same server. */
  | 'lock' | 'unlock' | 'publish'

/** Route label for requests no route served. Route names cannot contain parentheses. */
export const NO_ROUTE = '(none)'

export interface MetricsSources {
  /** Bytes and entries held by an in-process store (the memory store); leave out when there is none. */
  storeStats?: () => { bytes: number, entries: number }
  /** Whether the Redis connection is up; leave out without Redis (then cachegate_redis_up is not exported). */
  redisUp?: () => boolean
}

export class GatewayMetrics {
  readonly registry = new Registry()
  readonly #requests: TallyCounter<'route' | 'outcome'>
  readonly #requestDuration: TallyHistogram<'outcome'>
  readonly #originRequests: Counter<'route' | 'status'>
  readonly #originDuration: Histogram<'route'>
  readonly #coalesced: Counter<'route'>
  readonly #refreshes: Counter<'route' | 'result'>
  readonly #purges: Counter<'kind'>
  readonly #purged: Counter<'kind'>
  readonly #storeErrors: Counter<'op'>
  readonly #cdnPurges: Counter<'provider' | 'result'>
  readonly #storeDuration: TallyHistogram<'op'>
  readonly #invalidEntries: Counter<'reason'>
  #l1Bytes: () => number = () => 0

  constructor (sources: MetricsSources = {}) {
    const registers = [this.registry]
    // Counted on every request, hits included: tallies (./tallies.ts), not prom-client per call.
    this.#requests = new TallyCounter({
      name: 'cachegate_requests_total',
      help: 'Client requests by route and cache outcome (hit, miss, stale, revalidated, pass, error)',
      labelNames: ['route', 'outcome'],
      registry: this.registry
    })
    this.#requestDuration = new TallyHistogram({
      name: 'cachegate_request_duration_seconds',
      help: 'Time from receiving a client request to the end of the response, by cache outcome',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registry: this.registry
    })
    this.#originRequests = new Counter({
      name: 'cachegate_origin_requests_total',
      help: 'Requests sent to origins by route and response status ("error": no response)',
      labelNames: ['route', 'status'],
      registers
    })
    this.#originDuration = new Histogram({
      name: 'cachegate_origin_duration_seconds',
      help: 'Time until an origin\'s response headers arrived, by route',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    })
    this.#coalesced = new Counter({
      name: 'cachegate_coalesced_waiters_total',
      help: 'Requests answered by another request\'s origin fetch (request collapsing), by route',
      labelNames: ['route'],
      registers
    })
    this.#refreshes = new Counter({
      name: 'cachegate_refreshes_total',
      help: 'Background refreshes (stale-while-revalidate, refresh-ahead) by route and result',
      labelNames: ['route', 'result'],
      registers
    })
    this.#purges = new Counter({
      name: 'cachegate_purges_total',
      help: 'Purge requests by kind (url, prefix, tag, host, all)',
      labelNames: ['kind'],
      registers
    })
    this.#purged = new Counter({
      name: 'cachegate_purged_entries_total',
      help: 'Stored entries removed or marked stale by purges, by kind',
      labelNames: ['kind'],
      registers
    })
    this.#storeErrors = new Counter({
      name: 'cachegate_store_errors_total',
      help: 'Failed store operations (each one answered from the origin instead), by operation',
      labelNames: ['op'],
      registers
    })
    this.#storeDuration = new TallyHistogram({
      name: 'cachegate_store_duration_seconds',
      help: 'Store operation latency by operation',
      labelNames: ['op'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registry: this.registry
    })
    this.#invalidEntries = new Counter({
      name: 'cachegate_store_invalid_entries_total',
      help: 'Stored entries refused on read (malformed, failed checks, damaged body) and deleted; each was answered as a miss, by reason',
      labelNames: ['reason'],
      registers
    })
    this.#cdnPurges = new Counter({
      name: 'cachegate_cdn_purge_total',
      help: 'Purge batches forwarded to CDNs by provider and result (done, retried, failed, refused)',
      labelNames: ['provider', 'result'],
      registers
    })
    // Every reason is exported from the start (0 until it happens), so an alert can use rate().
    for (const reason of ENTRY_PROBLEMS) this.#invalidEntries.labels({ reason })
    const l1 = (): number => this.#l1Bytes()
    this.#gauge('cachegate_l1_bytes', 'Bytes held by the per-instance L1 in front of Redis (0 without one)', l1)
    const stats = sources.storeStats
    if (stats !== undefined) {
      this.#gauge('cachegate_store_bytes', 'Estimated bytes held by the in-process memory store', () => stats().bytes)
      this.#gauge('cachegate_store_entries', 'Entries held by the in-process memory store', () => stats().entries)
    }
    const redisUp = sources.redisUp
    if (redisUp !== undefined) {
      // Across workers: down when any worker is down.
      this.#gauge('cachegate_redis_up', '1 when the Redis connection is ready, else 0 (requests then go to the origin)', () => redisUp() ? 1 : 0, 'min')
    }
  }

  /** A gauge read when scraped. */
  #gauge (name: string, help: string, read: () => number, aggregator: 'sum' | 'min' = 'sum'): void {
    this.registry.registerMetric(new Gauge({
      name,
      help,
      aggregator,
      registers: [],
      collect () { this.set(read()) }
    }))
  }

  /** Slots per route, then per outcome: two lookups of strings the request already has. */
  readonly #requestSlots = new Map<string, Map<string, { requests: CounterSlot, duration: HistogramSlot }>>()

  /** One per client request (the gateway's outcome listener). */
  request (o: RequestOutcome): void {
    const route = o.route ?? NO_ROUTE
    let byOutcome = this.#requestSlots.get(route)
    if (byOutcome === undefined) {
      // Bounded by routes × outcomes; a reload with new route names adds a few.
      byOutcome = new Map()
      this.#requestSlots.set(route, byOutcome)
    }
    let slot = byOutcome.get(o.outcome)
    if (slot === undefined) {
      slot = { requests: this.#requests.slot({ route, outcome: o.outcome }), duration: this.#requestDuration.slot({ outcome: o.outcome }) }
      byOutcome.set(o.outcome, slot)
    }
    slot.requests.add()
    slot.duration.observe(o.durationMs / 1000)
  }

  /** Read-through and pass-through lifecycle events. */
  lifecycle (e: LifecycleEvent): void {
    switch (e.type) {
      case 'origin':
        this.#originRequests.inc({ route: e.route, status: String(e.status) })
        this.#originDuration.observe({ route: e.route }, e.seconds)
        return
      case 'collapsed':
        this.#coalesced.inc({ route: e.route })
        return
      case 'refresh':
        this.#refreshes.inc({ route: e.route, result: e.result })
    }
  }

  /** One CDN purge batch result (refused: a part of a purge the provider cannot do). */
  cdnPurge (provider: string, result: 'done' | 'retried' | 'failed' | 'refused'): void {
    this.#cdnPurges.inc({ provider, result })
  }

  /** Batches waiting in the CDN forward outbox, per configured CDN, read when scraped. */
  setCdnOutboxDepth (read: () => Promise<ReadonlyArray<[cdn: string, depth: number]>>): void {
    this.registry.registerMetric(new Gauge({
      name: 'cachegate_cdn_outbox_depth',
      help: 'Purge batches waiting to be forwarded (or being retried), per CDN',
      labelNames: ['cdn'],
      registers: [],
      async collect () {
        for (const [cdn, depth] of await read()) this.set({ cdn }, depth)
      }
    }))
  }

  /** One purge request of a kind and the number of stored entries it removed or marked stale. */
  purge (kind: PurgeKind, entries: number): void {
    this.#purges.inc({ kind })
    if (entries > 0) this.#purged.inc({ kind }, entries)
  }

  readonly #storeSlots = new Map<StoreOp, HistogramSlot>()

  storeOperation (op: StoreOp, seconds: number, failed: boolean): void {
    let slot = this.#storeSlots.get(op)
    if (slot === undefined) {
      slot = this.#storeDuration.slot({ op })
      this.#storeSlots.set(op, slot)
    }
    slot.observe(seconds)
    if (failed) this.#storeErrors.inc({ op })
  }

  storeError (op: StoreOp): void {
    this.#storeErrors.inc({ op })
  }

  /** One stored entry refused on read (Store.onInvalidEntry). */
  invalidEntry (reason: EntryProblem): void {
    this.#invalidEntries.inc({ reason })
  }

  /** Where cachegate_l1_bytes comes from (the tiered store); undefined: 0. */
  setL1Bytes (source: (() => number) | undefined): void {
    this.#l1Bytes = source ?? (() => 0)
  }

  get contentType (): string {
    return this.registry.contentType
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }
}

/**
 * A Store that times every call into cachegate_store_duration_seconds and counts failures in
 * cachegate_store_errors_total; otherwise it is the store it wraps.
 */
export class MeteredStore implements Store {
  readonly #store: Store
  readonly #metrics: GatewayMetrics

  constructor (store: Store, metrics: GatewayMetrics) {
    this.#store = store
    this.#metrics = metrics
  }

  get kind (): Store['kind'] {
    return this.#store.kind
  }

  /** The store without metering (for stats and implementation-specific calls). */
  get inner (): Store {
    return this.#store
  }

  async #timed<T> (op: StoreOp, call: () => Promise<T>): Promise<T> {
    const start = performance.now()
    try {
      const result = await call()
      this.#metrics.storeOperation(op, (performance.now() - start) / 1000, false)
      return result
    } catch (err) {
      this.#metrics.storeOperation(op, (performance.now() - start) / 1000, true)
      throw err
    }
  }

  /** A synchronous read from process memory, timed as a lookup (it answers the same question). */
  peek (url: CacheKey): CacheEntry | undefined {
    if (this.#store.peek === undefined) return undefined
    const start = performance.now()
    const entry = this.#store.peek(url)
    // Counted only when it answers: otherwise the full path's lookup is the one that counts.
    if (entry !== undefined) this.#metrics.storeOperation('lookup', (performance.now() - start) / 1000, false)
    return entry
  }

  /** The hot read: timed by chaining on the store's promise rather than through #timed's async frames. */
  lookup (url: CacheKey): Promise<StoreLookup> {
    const start = performance.now()
    return this.#store.lookup(url).then((result) => {
      this.#metrics.storeOperation('lookup', (performance.now() - start) / 1000, false)
      return result
    }, (err: unknown) => {
      this.#metrics.storeOperation('lookup', (performance.now() - start) / 1000, true)
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    })
  }

  async getVariant (url: CacheKey, variant: VariantId): Promise<CacheEntry | null> {
    return await this.#timed('get', async () => await this.#store.getVariant(url, variant))
  }

  async put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void> {
    await this.#timed('put', async () => await this.#store.put(url, variant, entry, options))
  }

  async deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    await this.#timed('delete', async () => await this.#store.deleteVariant(url, variant))
  }

  async deleteUrl (url: CacheKey): Promise<number> {
    return await this.#timed('delete_url', async () => await this.#store.deleteUrl(url))
  }

  async markStale (url: CacheKey, at: number): Promise<number> {
    return await this.#timed('mark_stale', async () => await this.#store.markStale(url, at))
  }

  async urlsForTag (tag: string): Promise<CacheKey[]> {
    return await this.#timed('tag_index', async () => await this.#store.urlsForTag(tag))
  }

  async urlsForPrefix (origin: string, prefix: string): Promise<CacheKey[]> {
    return await this.#timed('prefix_index', async () => await this.#store.urlsForPrefix(origin, prefix))
  }

  async origins (): Promise<string[]> {
    return await this.#timed('origins', async () => await this.#store.origins())
  }

  onInvalidEntry (listener: InvalidEntryListener): () => void {
    return this.#store.onInvalidEntry?.(listener) ?? (() => undefined)
  }

  async close (): Promise<void> {
    await this.#store.close()
  }
}
