/**
 * Finding the stored response for a request: the URL's lookup (its Vary record and, without
 * Vary, its entry), then the variant this request selects, verified against the URL and the
 * variant values it was stored for; when that variant is missing, the response to the request's
 * first language alone, then that language's alias (route option languageSelection,
 * cache/language.ts). A store failure is a miss with a Cache-Status detail.
 */
import type { CacheEntry } from '../cache/entry.ts'
import { NO_VARIANT, type CacheKey, type VariantId } from '../cache/key.ts'
import { languageFallback, speaks } from '../cache/language.ts'
import { outlived } from '../cache/policy.ts'
import { mergeSpec, sameVariant, variantId, variantValues } from '../cache/vary.ts'
import type { Clock } from '../clock.ts'
import { isStoreBypassed } from '../store/circuit-breaker.ts'
import type { Store } from '../store/store.ts'
import type { CacheRequest, Found } from './types.ts'

export type Lookup = NonNullable<CacheRequest['lookup']>
type VariantValues = Readonly<Record<string, string | null>>

export interface FinderOptions {
  store: Pick<Store, 'lookup' | 'getVariant'>
  clock: Clock
  onStoreError: (op: 'lookup' | 'get', err: unknown) => void
}

export class Finder {
  readonly #o: FinderOptions
  /** Second looks in the store (after a timeout, after a fill), by URL, shared while in progress. */
  readonly #shared = new Map<string, Promise<Lookup>>()

  constructor (options: FinderOptions) {
    this.#o = options
  }

  /** The stored entry for this request's variant, verified against URL and variant values. */
  async find (req: CacheRequest, prefetched?: CacheRequest['lookup']): Promise<Found> {
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
    const read = variant === NO_VARIANT ? { entry: this.#usable(req, lookup.entry, values) } : await this.#read(req, variant, values)
    if ('error' in read) return { entry: null, vary: lookup.vary, variant, values, storeDetail: storeDetail(read.error) }
    const fallback = read.entry === null && route.languageSelection ? languageFallback(spec, values, req.forward) : []
    // The request's own variant is missing: the response to its first language alone, then
    // that language's alias (cache/language.ts), only while the entry found still says it is
    // in that language. Found under the variant it was read from, which a revalidation updates.
    for (const candidate of fallback) {
      const other = variantId(candidate.values)
      const found = await this.#read(req, other, candidate.values)
      if ('error' in found) return { entry: null, vary: lookup.vary, variant, values, storeDetail: storeDetail(found.error) }
      if (found.entry !== null && speaks(found.entry.headers, candidate.tag)) {
        return { entry: found.entry, vary: lookup.vary, variant: other, values: candidate.values, storeDetail: undefined }
      }
    }
    return { entry: read.entry, vary: lookup.vary, variant, values, storeDetail: undefined }
  }

  /** One variant's stored entry, if it may answer for `values`; a store failure is reported and returned. */
  async #read (req: CacheRequest, variant: VariantId, values: VariantValues): Promise<{ entry: CacheEntry | null } | { error: unknown }> {
    try {
      return { entry: this.#usable(req, await this.#o.store.getVariant(req.key, variant), values) }
    } catch (error) {
      this.#o.onStoreError('get', error)
      return { error }
    }
  }

  /** The entry unless it was stored for another URL or another variant, or has outlived its retention. */
  #usable (req: CacheRequest, entry: CacheEntry | null, values: VariantValues): CacheEntry | null {
    // Never answer with a response stored for another URL or another variant.
    if (entry === null || entry.url !== req.key || !sameVariant(entry.vary, values)) return null
    return outlived(entry, this.#o.clock.now(), req.route.keep) ? null : entry
  }

  /**
   * Looks again through the shared lookup, up to `tries` times while the store does not answer
   * in time: a lookup past its deadline is, on a busy machine, usually one Redis answered late.
   */
  async lookAgain (req: CacheRequest, tries = 1): Promise<Found> {
    let found = await this.find(req, await this.sharedLookup(req.key))
    for (let n = 1; n < tries && found.storeDetail === 'store-unavailable'; n++) found = await this.find(req, await this.sharedLookup(req.key))
    return found
  }

  /**
   * One store lookup per URL at a time for second looks (after a lookup past its deadline, or
   * for the waiters a fill releases): they all look at once, and a burst of identical lookups
   * on a busy instance is what makes them miss their deadline. Never rejects.
   */
  async sharedLookup (url: CacheKey): Promise<Lookup> {
    let pending = this.#shared.get(url)
    if (pending === undefined) {
      const started = this.#o.store.lookup(url).then((result) => ({ result }), (error: unknown) => ({ error }))
      this.#shared.set(url, started)
      const forget = (): void => { if (this.#shared.get(url) === started) this.#shared.delete(url) }
      started.then(forget, forget)
      pending = started
    }
    return await pending
  }
}

/**
 * Cache-Status detail for a store call that failed: `store-bypassed` when a circuit breaker
 * refused it unsent, `store-unavailable` when the store was asked and failed (timeout,
 * connection lost, refused).
 */
export function storeDetail (err: unknown): string {
  return isStoreBypassed(err) ? 'store-bypassed' : 'store-unavailable'
}
