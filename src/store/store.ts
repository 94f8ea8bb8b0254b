/**
 * The contract every store honours (memory, Redis, tiered). test/store/contract.ts runs one
 * shared suite over each implementation.
 *
 * Layout: a URL (normalized key) has a Vary record (the header names its responses vary on)
 * and one entry per variant. A variant is named by its VariantId, derived from the request's
 * normalized values for the Vary names ('' when the URL does not vary).
 */
import type { CacheEntry } from '../cache/entry.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'

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
}
