/**
 * The contract every store honours (memory, Redis, tiered). test/store/contract.ts runs one
 * shared suite over each implementation.
 *
 * Layout: a URL (normalized key) has a Vary record (the header names its responses vary on)
 * and one entry per variant. A variant is named by its VariantId, derived from the request's
 * normalized values for the Vary names ('' when the URL does not vary).
 */
import type { CacheEntry } from '../cache/entry.ts'
import type { EntryProblem } from '../cache/entry-check.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'
import { LANGUAGE_ALIAS } from '../cache/vary.ts'

export interface StoreLookup {
  /** Vary names recorded for the URL: null when nothing is recorded, [] when it does not vary. */
  vary: readonly string[] | null
  /** The no-Vary variant's entry, read in the same round trip; null when absent. */
  entry: CacheEntry | null
}

export interface PutOptions {
  /** Garbage-collection bound: freshness plus both stale windows (ms). */
  ttlMs: number
  /** Most variants kept per URL; the least recently stored go first. */
  maxVariants: number
}

/**
 * A stored entry a read refused (src/cache/entry-check.ts): it was read as absent, and the
 * store deleted it (unless a newer value had replaced it meanwhile, or the delete failed).
 */
export interface InvalidEntry {
  url: CacheKey
  variant: VariantId
  problem: EntryProblem
  /** The store that held it (a tiered store's L1 reports as 'memory'). */
  store: 'memory' | 'redis'
  /** false when the delete failed: the value then stays until its TTL or the next put. */
  deleted: boolean
}

export type InvalidEntryListener = (e: InvalidEntry) => void

/** Calls every listener; one that throws neither stops the others nor reaches the read. */
export function reportInvalid (listeners: Iterable<InvalidEntryListener>, e: InvalidEntry): void {
  for (const listener of listeners) {
    try {
      listener(e)
    } catch {}
  }
}

export interface Store {
  readonly kind: 'memory' | 'redis' | 'tiered'
  /** One round trip: the URL's Vary record and its no-Vary entry. */
  lookup(url: CacheKey): Promise<StoreLookup>
  getVariant(url: CacheKey, variant: VariantId): Promise<CacheEntry | null>
  /**
   * Stores an entry. When the entry's Vary names differ from the URL's record, the old
   * variants are dropped first (a changed Vary replaces them).
   */
  put(url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void>
  /** Removes one variant. */
  deleteVariant(url: CacheKey, variant: VariantId): Promise<void>
  /** Removes every variant of a URL and its Vary record; returns how many entries went. */
  deleteUrl(url: CacheKey): Promise<number>
  /** Marks every variant of a URL stale as of `at` (soft purge); returns how many were marked. */
  markStale(url: CacheKey, at: number): Promise<number>
  /** URLs stored with a tag (index written at store time, never a scan). */
  urlsForTag(tag: string): Promise<CacheKey[]>
  /** URLs of one host (scheme://host[:port]) whose key starts with `prefix` ('' for the whole host). */
  urlsForPrefix(origin: string, prefix: string): Promise<CacheKey[]>
  /** Every stored URL's origin (for purge-all). */
  origins(): Promise<string[]>
  close(): Promise<void>
  /**
   * Optional synchronous read of a URL's no-Vary entry, for stores that hold it in this
   * process (memory, L1): undefined when not there or when the store cannot tell without I/O.
   */
  peek?(url: CacheKey): CacheEntry | undefined
  /**
   * Stored data is untrusted: every entry a read returns (lookup, getVariant, peek) has passed
   * entryProblem for the URL asked, and a body seal recorded at put time. A stored value that
   * fails is read as absent, deleted, and reported to these listeners (once per value found).
   * put() does not refuse such entries: the check belongs to the read, where stored bytes
   * come back. Returns a function that removes the listener.
   */
  onInvalidEntry?(listener: InvalidEntryListener): () => void
}

/** Rejects what no store can honour; shared by the stores so they fail alike. */
export function checkPut (url: CacheKey, entry: CacheEntry, options: PutOptions): void {
  if (entry.url !== url) {
    throw new TypeError(`entry.url ${JSON.stringify(entry.url)} does not match the key ${JSON.stringify(url)}`)
  }
  if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) {
    throw new RangeError(`ttlMs must be a positive number, got ${String(options.ttlMs)}`)
  }
  if (!Number.isSafeInteger(options.maxVariants) || options.maxVariants < 1) {
    throw new RangeError(`maxVariants must be an integer >= 1, got ${String(options.maxVariants)}`)
  }
}

/**
 * The URL's Vary record as stores keep it: the entry's Vary names, sorted; a language alias's
 * mark names no request field and is left out (an alias varies as the responses it copies).
 */
export function varyNames (entry: CacheEntry): readonly string[] {
  return Object.freeze(Object.keys(entry.vary).filter((name) => name !== LANGUAGE_ALIAS).sort())
}
