/**
 * In-process store: an LRU bounded in bytes, with lazy expiry on the injected clock.
 *
 * Entries are kept as objects, not encoded. put() stores a private copy (headers, arrays
 * and the body bytes are copied) and freezes it; reads hand out that frozen copy without
 * copying again, because hits are the hot path. So a caller cannot change a stored entry
 * through an object it gave or got: assigning a field throws (ESM is strict mode). The one
 * thing freezing cannot protect is the body's bytes: callers MUST NOT write into
 * `entry.body`. To derive an entry (a 304 merge, say) build a new object:
 * `{ ...entry, headers }`.
 *
 * Stored objects are checked on every read as Redis values are (src/cache/entry-check.ts):
 * the fields once per stored object (it is deeply frozen, so it cannot change afterwards),
 * the body against the length and CRC-32 recorded at put time on every read (bytes cannot be
 * frozen). An entry that fails is removed, reported to onInvalidEntry listeners, and read as
 * absent. Corruption here can only come from code, but both stores obey one rule.
 *
 * Tag and origin indexes are exact: they are cleaned whenever an entry goes (delete,
 * eviction, cap, expiry noticed on read or on an index query).
 */
import type { CacheEntry, HeaderMap } from '../cache/entry.ts'
import { bodyProblem, entryProblem, sealBody, type BodySeal, type EntryProblem } from '../cache/entry-check.ts'
import { originOf, type CacheKey, type VariantId } from '../cache/key.ts'
import type { Clock } from '../clock.ts'
import { checkPut, reportInvalid, varyNames, type InvalidEntryListener, type PutOptions, type Store, type StoreLookup } from './store.ts'

export interface MemoryStoreOptions {
  /** Upper bound on the estimated bytes held (bodies plus headers and bookkeeping). */
  maxBytes: number
  clock: Clock
}

export interface MemoryStoreStats {
  bytes: number
  entries: number
}

interface Slot {
  readonly url: CacheKey
  readonly variant: VariantId
  entry: CacheEntry
  /** The body's length and CRC-32 when it was stored. */
  readonly seal: BodySeal
  readonly size: number
  readonly expiresAt: number
  /** Read since it last reached the head of the eviction order (second chance). */
  used: boolean
}

interface UrlRecord {
  vary: readonly string[]
  /** In store order: the first is the least recently stored (the variant cap drops it). */
  readonly variants: Map<VariantId, Slot>
  /** When the Vary record lapses: the latest expiry of any entry stored for the URL. */
  expiresAt: number
}

/** Objects, map and set cells, and the key strings, per entry: an estimate, not a measure. */
const ENTRY_OVERHEAD = 400
const FIELD_OVERHEAD = 32

export class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly #maxBytes: number
  readonly #clock: Clock
  readonly #urls = new Map<CacheKey, UrlRecord>()
  /**
   * Every slot in eviction order (a Set iterates in insertion order): least recently stored or
   * spared first. A read only marks its slot `used`; eviction gives a used slot at the head a
   * second chance (moved to the tail, unmarked) and takes the first unused one. That is LRU's
   * "read keeps it" without moving a Set cell on every hit (CLOCK, as in many caches).
   */
  readonly #lru = new Set<Slot>()
  /** tag -> url -> how many of the URL's variants carry the tag. */
  readonly #tags = new Map<string, Map<CacheKey, number>>()
  readonly #origins = new Map<string, Set<CacheKey>>()
  /** Stored objects whose fields passed entryProblem (frozen, so once is enough). */
  readonly #checked = new WeakSet<CacheEntry>()
  readonly #invalidListeners = new Set<InvalidEntryListener>()
  #bytes = 0

  constructor (options: MemoryStoreOptions) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= 0) {
      throw new RangeError(`maxBytes must be a positive integer, got ${String(options.maxBytes)}`)
    }
    this.#maxBytes = options.maxBytes
    this.#clock = options.clock
  }

  stats (): MemoryStoreStats {
    return { bytes: this.#bytes, entries: this.#lru.size }
  }

  lookup (url: CacheKey): Promise<StoreLookup> {
    const record = this.#record(url)
    if (record === undefined) return Promise.resolve({ vary: null, entry: null })
    return Promise.resolve({ vary: record.vary, entry: this.#read(record, '' as VariantId) })
  }

  peek (url: CacheKey): CacheEntry | undefined {
    const record = this.#record(url)
    if (record === undefined || record.vary.length > 0) return undefined
    return this.#read(record, '' as VariantId) ?? undefined
  }

  getVariant (url: CacheKey, variant: VariantId): Promise<CacheEntry | null> {
    const record = this.#record(url)
    return Promise.resolve(record === undefined ? null : this.#read(record, variant))
  }

  put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void> {
    try {
      checkPut(url, entry, options)
      this.#put(url, variant, entry, options)
      return Promise.resolve()
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
  }

  #put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): void {
    const now = this.#clock.now()
    const vary = varyNames(entry)
    let record = this.#record(url)
    if (record !== undefined && !sameNames(record.vary, vary)) {
      // A changed Vary: the old variants were keyed on other request headers.
      for (const slot of [...record.variants.values()]) this.#remove(slot)
      record = undefined
    }
    const old = record?.variants.get(variant)
    if (old !== undefined) this.#remove(old)

    const stored = freezeCopy(entry)
    const size = estimateSize(stored)
    if (size > this.#maxBytes) return

    record = this.#urls.get(url)
    if (record === undefined) {
      record = { vary, variants: new Map(), expiresAt: 0 }
      this.#urls.set(url, record)
      const origin = originOf(url)
      let urls = this.#origins.get(origin)
      if (urls === undefined) this.#origins.set(origin, (urls = new Set<CacheKey>()))
      urls.add(url)
    }
    record.vary = vary
    const expiresAt = now + options.ttlMs
    record.expiresAt = Math.max(record.expiresAt, expiresAt)
    const slot: Slot = { url, variant, entry: stored, seal: sealBody(stored.body), size, expiresAt, used: false }
    record.variants.set(variant, slot)
    this.#lru.add(slot)
    this.#bytes += size
    for (const tag of new Set(stored.tags)) {
      let urls = this.#tags.get(tag)
      if (urls === undefined) this.#tags.set(tag, (urls = new Map<CacheKey, number>()))
      urls.set(url, (urls.get(url) ?? 0) + 1)
    }

    while (record.variants.size > options.maxVariants) {
      const oldest = record.variants.values().next().value
      if (oldest === undefined) break
      this.#remove(oldest)
    }
    while (this.#bytes > this.#maxBytes) {
      const lru = this.#lru.values().next().value
      if (lru === undefined) break
      if (lru.used || lru === slot) {
        // Ends: every slot passed over is unmarked, and the one just stored fits on its own.
        lru.used = false
        this.#lru.delete(lru)
        this.#lru.add(lru)
        continue
      }
      this.#remove(lru)
    }
  }

  deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    const slot = this.#urls.get(url)?.variants.get(variant)
    if (slot !== undefined) this.#remove(slot)
    return Promise.resolve()
  }

  deleteUrl (url: CacheKey): Promise<number> {
    const record = this.#urls.get(url)
    if (record === undefined) return Promise.resolve(0)
    const now = this.#clock.now()
    let live = 0
    for (const slot of [...record.variants.values()]) {
      if (slot.expiresAt > now) live++
      this.#remove(slot)
    }
    return Promise.resolve(live)
  }

  markStale (url: CacheKey, at: number): Promise<number> {
    this.#sweep(url)
    const record = this.#urls.get(url)
    if (record === undefined) return Promise.resolve(0)
    for (const slot of record.variants.values()) {
      const current = slot.entry.invalidatedAt
      // An earlier soft purge already made it stale from an earlier time: keep that.
      if (current === 0 || current > at) slot.entry = Object.freeze({ ...slot.entry, invalidatedAt: at })
    }
    return Promise.resolve(record.variants.size)
  }

  urlsForTag (tag: string): Promise<CacheKey[]> {
    const urls = this.#tags.get(tag)
    if (urls === undefined) return Promise.resolve([])
    for (const url of [...urls.keys()]) this.#sweep(url)
    return Promise.resolve([...(this.#tags.get(tag)?.keys() ?? [])].sort())
  }

  urlsForPrefix (origin: string, prefix: string): Promise<CacheKey[]> {
    const urls = this.#origins.get(origin)
    if (urls === undefined) return Promise.resolve([])
    const out: CacheKey[] = []
    for (const url of [...urls]) {
      if (!url.startsWith(prefix)) continue
      this.#sweep(url)
      if (this.#urls.has(url)) out.push(url)
    }
    return Promise.resolve(out.sort())
  }

  origins (): Promise<string[]> {
    for (const urls of [...this.#origins.values()]) {
      for (const url of [...urls]) this.#sweep(url)
    }
    return Promise.resolve([...this.#origins.keys()].sort())
  }

  onInvalidEntry (listener: InvalidEntryListener): () => void {
    this.#invalidListeners.add(listener)
    return () => { this.#invalidListeners.delete(listener) }
  }

  close (): Promise<void> {
    this.#urls.clear()
    this.#lru.clear()
    this.#tags.clear()
    this.#origins.clear()
    this.#bytes = 0
    return Promise.resolve()
  }

  /** The URL's record, unless every entry stored for it has expired. */
  #record (url: CacheKey): UrlRecord | undefined {
    const record = this.#urls.get(url)
    if (record !== undefined && record.expiresAt <= this.#clock.now()) {
      for (const slot of [...record.variants.values()]) this.#remove(slot)
      return undefined
    }
    return record
  }

  #read (record: UrlRecord, variant: VariantId): CacheEntry | null {
    const slot = record.variants.get(variant)
    if (slot === undefined) return null
    if (slot.expiresAt <= this.#clock.now()) {
      this.#remove(slot)
      return null
    }
    const problem = this.#problem(slot)
    if (problem !== undefined) {
      this.#remove(slot)
      reportInvalid(this.#invalidListeners, { url: slot.url, variant: slot.variant, problem, store: 'memory', deleted: true })
      return null
    }
    slot.used = true
    return slot.entry
  }

  /** Why the slot's entry must not be served, if it must not (see the file comment). */
  #problem (slot: Slot): EntryProblem | undefined {
    const entry = slot.entry
    if (!this.#checked.has(entry)) {
      const problem = entryProblem(entry, slot.url)
      if (problem !== undefined) return problem
      this.#checked.add(entry)
    }
    return bodyProblem(entry.body, slot.seal)
  }

  /** Drops the URL's expired entries. */
  #sweep (url: CacheKey): void {
    const record = this.#urls.get(url)
    if (record === undefined) return
    const now = this.#clock.now()
    for (const slot of [...record.variants.values()]) {
      if (slot.expiresAt <= now) this.#remove(slot)
    }
  }

  /** Forgets one entry and everything that points at it; the URL goes with its last entry. */
  #remove (slot: Slot): void {
    if (!this.#lru.delete(slot)) return
    this.#bytes -= slot.size
    for (const tag of new Set(slot.entry.tags)) {
      const urls = this.#tags.get(tag)
      const n = urls?.get(slot.url)
      if (urls === undefined || n === undefined) continue
      if (n > 1) {
        urls.set(slot.url, n - 1)
      } else {
        urls.delete(slot.url)
        if (urls.size === 0) this.#tags.delete(tag)
      }
    }
    const record = this.#urls.get(slot.url)
    if (record === undefined || record.variants.get(slot.variant) !== slot) return
    record.variants.delete(slot.variant)
    if (record.variants.size > 0) return
    this.#urls.delete(slot.url)
    const origin = originOf(slot.url)
    const urls = this.#origins.get(origin)
    urls?.delete(slot.url)
    if (urls?.size === 0) this.#origins.delete(origin)
  }
}

function sameNames (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i])
}

function freezeCopy (e: CacheEntry): CacheEntry {
  const headers: HeaderMap = Object.freeze(Object.fromEntries(
    Object.entries(e.headers).map(([name, value]) => [name, Array.isArray(value) ? frozenArray(value) : value])
  ))
  return Object.freeze({
    ...e,
    headers,
    body: Buffer.from(e.body),
    vary: Object.freeze({ ...e.vary }),
    tags: frozenArray(e.tags)
  })
}

function frozenArray (values: readonly string[]): string[] {
  const copy = values.slice()
  Object.freeze(copy)
  return copy
}

function estimateSize (e: CacheEntry): number {
  let size = ENTRY_OVERHEAD + e.body.length + 2 * e.url.length
  for (const [name, value] of Object.entries(e.headers)) {
    if (Array.isArray(value)) {
      for (const v of value) size += name.length + v.length + FIELD_OVERHEAD
    } else {
      size += name.length + value.length + FIELD_OVERHEAD
    }
  }
  for (const tag of e.tags) size += tag.length + FIELD_OVERHEAD
  for (const [name, value] of Object.entries(e.vary)) size += name.length + (value?.length ?? 0) + FIELD_OVERHEAD
  return size
}
