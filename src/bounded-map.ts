/**
 * The one bound every per-key structure shares (hit-for-miss, fill records, key caches, the
 * decision log, header caches): a Map with a cap in entries and in bytes, evicting the least
 * recently used entry first. A map keyed by request URLs otherwise grows with the number of
 * distinct URLs clients send, which an attacker chooses.
 *
 * Bytes are an estimate (UTF-16 strings at two bytes a character plus a fixed overhead per
 * entry, or the caller's `sizeOf`): enough to bound memory, not to account for it exactly.
 * A leaf like clock.ts and errors.ts: anyone may import it; it imports nothing.
 */

/** Overhead of one Map entry and its bookkeeping, in bytes (measured order of magnitude). */
const ENTRY_OVERHEAD = 64

export interface BoundedMapOptions<K, V> {
  /** Most entries held; the least recently used is evicted past it. */
  maxEntries: number
  /** Most estimated bytes held (keys, values and overhead). Default: unbounded in bytes. */
  maxBytes?: number
  /** Estimated bytes of one value (default: 2 per character of a string, 16 for anything else). */
  sizeOf?: (value: V, key: K) => number
}

export interface BoundedMapStats {
  entries: number
  bytes: number
  maxEntries: number
  maxBytes: number
  /** Entries evicted to stay within the bounds since creation. */
  evictions: number
}

function defaultSize (value: unknown): number {
  return typeof value === 'string' ? value.length * 2 : 16
}

function keySize (key: unknown): number {
  return typeof key === 'string' ? key.length * 2 : 16
}

export class BoundedMap<K, V> {
  readonly #map = new Map<K, { value: V, bytes: number }>()
  readonly #maxEntries: number
  readonly #maxBytes: number
  readonly #sizeOf: (value: V, key: K) => number
  #bytes = 0
  #evictions = 0

  constructor (options: BoundedMapOptions<K, V>) {
    if (!(options.maxEntries >= 1)) throw new RangeError(`maxEntries must be at least 1, got ${options.maxEntries}`)
    this.#maxEntries = Math.floor(options.maxEntries)
    this.#maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY
    this.#sizeOf = options.sizeOf ?? defaultSize
  }

  get size (): number {
    return this.#map.size
  }

  /** Estimated bytes held. */
  get bytes (): number {
    return this.#bytes
  }

  stats (): BoundedMapStats {
    return { entries: this.#map.size, bytes: this.#bytes, maxEntries: this.#maxEntries, maxBytes: this.#maxBytes, evictions: this.#evictions }
  }

  has (key: K): boolean {
    return this.#map.has(key)
  }

  /** The value, marked most recently used. */
  get (key: K): V | undefined {
    const slot = this.#map.get(key)
    if (slot === undefined) return undefined
    this.#map.delete(key)
    this.#map.set(key, slot)
    return slot.value
  }

  /** The value, without changing its place in the eviction order. */
  peek (key: K): V | undefined {
    return this.#map.get(key)?.value
  }

  /**
   * Stores the value as most recently used, then evicts least recently used entries until
   * both bounds hold. A value larger than maxBytes on its own is not stored at all.
   */
  set (key: K, value: V): this {
    this.delete(key)
    const bytes = keySize(key) + this.#sizeOf(value, key) + ENTRY_OVERHEAD
    if (bytes > this.#maxBytes) {
      this.#evictions++
      return this
    }
    this.#map.set(key, { value, bytes })
    this.#bytes += bytes
    while (this.#map.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const oldest = this.#map.keys().next()
      if (oldest.done === true) break
      this.delete(oldest.value)
      this.#evictions++
    }
    return this
  }

  delete (key: K): boolean {
    const slot = this.#map.get(key)
    if (slot === undefined) return false
    this.#map.delete(key)
    this.#bytes -= slot.bytes
    return true
  }

  clear (): void {
    this.#map.clear()
    this.#bytes = 0
  }

  /** Removes the entries the predicate selects (expired records, for example). */
  prune (expired: (value: V, key: K) => boolean): void {
    for (const [key, slot] of this.#map) if (expired(slot.value, key)) this.delete(key)
  }

  keys (): IterableIterator<K> {
    return this.#map.keys()
  }

  * entries (): IterableIterator<[K, V]> {
    for (const [key, slot] of this.#map) yield [key, slot.value]
  }
}
