/**
 * Two tiers, one truth: a small per-instance MemoryStore (L1) in front of the shared store
 * (L2, Redis). L2 is the truth; L1 holds copies of what this instance read from L2, for the
 * URLs `useL1` accepts (routes with `l1: true`), for at most `maxTtlMs` (cache.l1MaxTtl) and
 * within `maxBytes` (cache.l1MaxBytes).
 *
 * Coherence:
 * - Every change this store makes to L2 (put, deleteVariant, deleteUrl, markStale) drops the
 *   local copy before and after the L2 write, then publishes the URL on the invalidation
 *   channel; every instance (this one included) drops its copy when the message arrives.
 * - L1 is filled only from L2 reads, never from puts (the put's own message would drop it).
 *   A read that was in flight when its URL was invalidated does not fill L1: otherwise a
 *   read that saw L2 before a purge could put the old entry back after the purge's message.
 * - A lost subscriber connection may have lost messages: L1 is cleared when it reconnects.
 *   While it is down, l1MaxTtl bounds how long a copy purged elsewhere can still be served.
 * - Message `*` clears L1 entirely: `bulk()` sends it once for a large purge instead of one
 *   message per URL.
 *
 * Indexes (urlsForTag, urlsForPrefix, origins) are read from L2: every L1 copy is in L2.
 *
 * Invalid stored entries: each tier checks what it reads (see Store.onInvalidEntry) and deletes
 * its own refused value; this store passes both tiers' reports on to its listeners.
 */
import { retention } from '../cache/freshness.ts'
import type { CacheEntry } from '../cache/entry.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'
import type { Clock } from '../clock.ts'
import type { Bus } from '../coordination/bus.ts'
import { MemoryStore } from './memory.ts'
import { reportInvalid, type InvalidEntryListener, type PutOptions, type Store, type StoreLookup } from './store.ts'

export interface TieredStoreOptions {
  /** The shared store (the truth). */
  l2: Store
  clock: Clock
  /** L1 size bound (cache.l1MaxBytes). */
  maxBytes: number
  /** Longest an L1 copy lives (cache.l1MaxTtl, ms); shorter when the entry's own retention ends sooner. */
  maxTtlMs: number
  /** Variants kept per URL in L1 (cache.maxVariants). */
  maxVariants: number
  /** Whether a URL may be copied into L1 (its route has `l1: true`). Read on every call. */
  useL1: (url: CacheKey) => boolean
  bus: Bus
  /** Invalidation channel, `${prefix}inval`; messages are URLs. */
  channel: string
  /** Reports a failed invalidation publish (the L2 change itself succeeded). */
  onError?: (op: string, err: unknown) => void
}

export interface TieredStoreStats {
  /** Reads answered by L1 without an L2 round trip. */
  l1Hits: number
  /** Reads that went to L2. */
  l2Reads: number
  /** Entries copied into L1. */
  fills: number
  /** Invalidation messages received (each drops one URL). */
  invalidations: number
  /** Times L1 was cleared (reconnects, `*` messages). */
  clears: number
  /** Bytes held by L1 now (estimate). */
  bytes: number
  /** Entries held by L1 now. */
  entries: number
}

/** An L2 read in flight; `valid` turns false when its URL is invalidated meanwhile. */
interface Ticket { valid: boolean }

/** The invalidation message that drops every L1 copy (a bulk purge). */
export const CLEAR_ALL = '*'

export class TieredStore implements Store {
  readonly kind = 'tiered'
  readonly #o: TieredStoreOptions
  #l1: MemoryStore
  readonly #reads = new Map<CacheKey, Set<Ticket>>()
  readonly #stats = { l1Hits: 0, l2Reads: 0, fills: 0, invalidations: 0, clears: 0 }
  readonly #listeners = new Set<(message: string) => void>()
  readonly #invalidListeners = new Set<InvalidEntryListener>()
  #started: Promise<void> | undefined

  constructor (options: TieredStoreOptions) {
    if (!Number.isFinite(options.maxTtlMs) || options.maxTtlMs < 0) {
      throw new RangeError(`maxTtlMs must be a number >= 0, got ${String(options.maxTtlMs)}`)
    }
    this.#o = options
    this.#l1 = this.#newL1()
    options.l2.onInvalidEntry?.((e) => { reportInvalid(this.#invalidListeners, e) })
  }

  onInvalidEntry (listener: InvalidEntryListener): () => void {
    this.#invalidListeners.add(listener)
    return () => { this.#invalidListeners.delete(listener) }
  }

  /** Subscribes to invalidations and reconnects; call once before serving. */
  async start (): Promise<void> {
    this.#started ??= (async () => {
      this.#o.bus.onReconnect(() => this.clear())
      await this.#o.bus.subscribe(this.#o.channel, (message) => {
        if (message === CLEAR_ALL) {
          this.clear()
        } else {
          this.#stats.invalidations++
          this.#forget(message as CacheKey)
        }
        for (const listener of this.#listeners) listener(message)
      })
    })()
    await this.#started
  }

  /**
   * Calls `listener` with each invalidation message after it was applied (tests, tools: on
   * Redis Cluster, pub/sub crosses nodes asynchronously). Returns a function that removes it.
   */
  onInvalidation (listener: (message: string) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  stats (): TieredStoreStats {
    const l1 = this.#l1.stats()
    return { ...this.#stats, bytes: l1.bytes, entries: l1.entries }
  }

  /** Drops every L1 copy, and keeps reads in flight from filling L1. */
  clear (): void {
    this.#stats.clears++
    const old = this.#l1
    this.#l1 = this.#newL1()
    old.close().catch(() => undefined)
    for (const tickets of this.#reads.values()) for (const ticket of tickets) ticket.valid = false
  }

  async lookup (url: CacheKey): Promise<StoreLookup> {
    if (!this.#o.useL1(url)) return await this.#o.l2.lookup(url)
    const local = await this.#l1.lookup(url)
    // A recorded Vary with names is enough: the variant is read with getVariant. Without
    // names the no-Vary entry must be here too.
    if (local.vary !== null && (local.vary.length > 0 || local.entry !== null)) {
      this.#stats.l1Hits++
      return local
    }
    return await this.#readL2(url, async () => await this.#o.l2.lookup(url), (found) => {
      if (found.entry !== null) this.#fill(url, '' as VariantId, found.entry)
    })
  }

  peek (url: CacheKey): CacheEntry | undefined {
    if (!this.#o.useL1(url)) return undefined
    const entry = this.#l1.peek(url)
    if (entry !== undefined) this.#stats.l1Hits++
    return entry
  }

  async getVariant (url: CacheKey, variant: VariantId): Promise<CacheEntry | null> {
    if (!this.#o.useL1(url)) return await this.#o.l2.getVariant(url, variant)
    const local = await this.#l1.getVariant(url, variant)
    if (local !== null) {
      this.#stats.l1Hits++
      return local
    }
    return await this.#readL2(url, async () => await this.#o.l2.getVariant(url, variant), (entry) => {
      if (entry !== null) this.#fill(url, variant, entry)
    })
  }

  async put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void> {
    await this.#change(url, async () => await this.#o.l2.put(url, variant, entry, options))
  }

  async deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    await this.#change(url, async () => await this.#o.l2.deleteVariant(url, variant))
  }

  async deleteUrl (url: CacheKey): Promise<number> {
    return await this.#change(url, async () => await this.#o.l2.deleteUrl(url))
  }

  async markStale (url: CacheKey, at: number): Promise<number> {
    return await this.#change(url, async () => await this.#o.l2.markStale(url, at))
  }

  /**
   * A large purge: `apply` changes L2 directly (no message per URL), then every instance is
   * told once to drop its whole L1 (`*`). Local copies go before and after. Until the message
   * arrives, other instances may serve copies of entries already purged, at most for the
   * purge's duration and never beyond l1MaxTtl. A failed publish rejects: the caller should
   * report the purge as failed, since other instances were not told.
   */
  async bulk<T> (apply: (l2: Pick<Store, 'deleteUrl' | 'markStale'>) => Promise<T>): Promise<T> {
    this.clear()
    try {
      return await apply(this.#o.l2)
    } finally {
      this.clear()
      await this.#o.bus.publish(this.#o.channel, CLEAR_ALL)
    }
  }

  async urlsForTag (tag: string): Promise<CacheKey[]> {
    return await this.#o.l2.urlsForTag(tag)
  }

  async urlsForPrefix (origin: string, prefix: string): Promise<CacheKey[]> {
    return await this.#o.l2.urlsForPrefix(origin, prefix)
  }

  async origins (): Promise<string[]> {
    return await this.#o.l2.origins()
  }

  async close (): Promise<void> {
    this.clear()
    await this.#o.l2.close()
  }

  #newL1 (): MemoryStore {
    const l1 = new MemoryStore({ maxBytes: this.#o.maxBytes, clock: this.#o.clock })
    l1.onInvalidEntry((e) => { reportInvalid(this.#invalidListeners, e) })
    return l1
  }

  /**
   * One change to L2: the local copy goes before (no reader is served the old copy while the
   * write runs) and after (a read that raced the write must not leave the old value), then
   * the other instances are told. A failed L2 write still publishes: it may have applied.
   */
  async #change<T> (url: CacheKey, write: () => Promise<T>): Promise<T> {
    this.#forget(url)
    try {
      return await write()
    } finally {
      this.#forget(url)
      await this.#o.bus.publish(this.#o.channel, url).catch((err: unknown) => this.#o.onError?.('publish', err))
    }
  }

  /** Drops the URL's L1 copies and keeps the L2 reads in flight for it from filling L1. */
  #forget (url: CacheKey): void {
    // MemoryStore changes synchronously; the promise only reports.
    this.#l1.deleteUrl(url).catch(() => undefined)
    const tickets = this.#reads.get(url)
    if (tickets !== undefined) for (const ticket of tickets) ticket.valid = false
  }

  async #readL2<T> (url: CacheKey, read: () => Promise<T>, fill: (value: T) => void): Promise<T> {
    this.#stats.l2Reads++
    const ticket: Ticket = { valid: true }
    let tickets = this.#reads.get(url)
    if (tickets === undefined) this.#reads.set(url, (tickets = new Set()))
    tickets.add(ticket)
    try {
      const value = await read()
      // Still wanted: not invalidated meanwhile, and the route may still use L1 (a reload).
      if (ticket.valid && this.#o.useL1(url)) fill(value)
      return value
    } finally {
      tickets.delete(ticket)
      if (tickets.size === 0 && this.#reads.get(url) === tickets) this.#reads.delete(url)
    }
  }

  /** Copies an entry read from L2 into L1, for min(l1MaxTtl, what is left of its retention). */
  #fill (url: CacheKey, variant: VariantId, entry: CacheEntry): void {
    const left = entry.responseTime + retention(entry) - this.#o.clock.now()
    const ttlMs = Math.min(this.#o.maxTtlMs, left)
    if (!(ttlMs >= 1) || entry.url !== url) return
    // A memory put cannot fail for a valid entry; a rejected one is simply not copied.
    this.#l1.put(url, variant, entry, { ttlMs, maxVariants: this.#o.maxVariants }).then(
      () => { this.#stats.fills++ },
      () => undefined
    )
  }
}
