/**
 * The store-write path of the read-through: whether a flight's response may be stored (the
 * decision recorded for /explain), the write itself once the body is complete (style.md: a
 * body is committed only when complete), and deletions. A failed write or delete is reported
 * and dropped, never retried in the request path.
 */
import type { Directives } from '../cache/cache-control.ts'
import type { CacheEntry } from '../cache/entry.ts'
import { retention } from '../cache/freshness.ts'
import { single } from '../cache/headers.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'
import { languageAlias } from '../cache/language.ts'
import { preparePost } from '../cache/post-as-get.ts'
import { prepareEntry, type OriginAnswer } from '../cache/prepare.ts'
import { REQUEST_SCOPED } from '../cache/storable.ts'
import { mergeSpec, variantId, variantValues } from '../cache/vary.ts'
import type { CacheConfig } from '../config/types.ts'
import { BoundedMap, type BoundedMapStats } from '../bounded-map.ts'
import type { Store } from '../store/store.ts'
import type { Flight, FlightHead } from './coalesce.ts'
import type { DecisionLog, StorageDecision } from './explain.ts'
import type { Tasks } from './tasks.ts'
import type { CacheRequest } from './types.ts'

export interface StoreWriterOptions {
  store: Pick<Store, 'put' | 'deleteVariant'>
  cache: Pick<CacheConfig, 'maxObjectSize' | 'maxVariants' | 'hitForMiss'>
  tasks: Tasks
  decisions: DecisionLog
  onStoreError: (op: 'put' | 'delete', err: unknown) => void
  /** Random source for TTL jitter; injectable for tests. */
  random: () => number
  /** Bounds of the hit-for-miss record (URLs are chosen by clients). */
  bounds: { maxEntries: number, maxBytes: number }
}

/** What the leader of a flight does with its response. */
export type Admission =
  /** Not stored, with the Cache-Status detail; `aboutUrl` when the refusal is the response's own (not this request's, nor an error or size): the URL is then marked uncacheable. */
  | { kind: 'refused', detail: string, aboutUrl: boolean, values: Record<string, string | null> }
  /** Stored once the body is complete; `write` resolves true when the store accepted it. Never rejects. */
  | { kind: 'storing', write: Promise<boolean>, values: Record<string, string | null> }
  /** Storable, but the store is bypassed (circuit open): the put would be refused unsent, so it is not attempted. */
  | { kind: 'bypassed', values: Record<string, string | null> }

/** A response judged storable from its head (StoreWriter.judge): what write() stores once its body is complete. */
export interface Storable {
  kind: 'storable'
  key: CacheKey
  keep: number
  meta: Omit<CacheEntry, 'body' | 'vary'>
  values: Record<string, string | null>
  /** Its language alias's variant values (cache/language.ts), when it is also stored as one. */
  alias: Record<string, string | null> | undefined
  decision: StorageDecision
}

/** StoreWriter.judge: a refusal, a store that is bypassed, or a response to write. */
export type Verdict = Exclude<Admission, { kind: 'storing' }> | Storable

export interface AdmitContext {
  req: Pick<CacheRequest, 'route' | 'key' | 'headers' | 'forward'>
  directives: Directives
  head: FlightHead
  flight: Flight
  /** The store is bypassed (its breaker is open): nothing is written. */
  bypassed: boolean
  /** When the miss started: a refusal of the URL's own marks it uncacheable from then on. */
  now: number
  /**
   * The response answered a POST: stored as the GET response of the URL only on the terms of
   * cache/post-as-get.ts, and a refusal says nothing about the URL's GET responses.
   */
  post?: boolean
}

/** A flight's response to a request, as the decisions in cache/ take it (prepareEntry, preparePost). */
export function originAnswer (req: AdmitContext['req'], directives: Directives, head: FlightHead, method = 'GET'): OriginAnswer {
  return { url: req.key, method, requestHeaders: req.headers, request: directives, status: head.status, headers: head.headers, requestTime: head.requestTime, responseTime: head.responseTime }
}

export class StoreWriter {
  readonly #o: StoreWriterOptions
  /** Hit-for-miss: keys recently found uncacheable, until when (ms); bounded (src/bounded-map.ts). */
  readonly #uncacheable: BoundedMap<string, number>
  /** The last write failed (Redis down or full): until one succeeds, no response claims `stored`. */
  #failing = false

  constructor (options: StoreWriterOptions) {
    this.#o = options
    this.#uncacheable = new BoundedMap<string, number>(options.bounds)
  }

  /** Hit-for-miss: whether the URL was found uncacheable less than `cache.hitForMiss` ago (its misses fetch alone). */
  uncacheable (url: CacheKey, now: number): boolean {
    const until = this.#uncacheable.get(url)
    if (until === undefined) return false
    if (until > now) return true
    this.#uncacheable.delete(url)
    return false
  }

  /** Marks the URL uncacheable (hit-for-miss) for `cache.hitForMiss` from `now`. */
  markUncacheable (url: CacheKey, now: number): void {
    if (this.#o.cache.hitForMiss > 0) this.#uncacheable.set(url, now + this.#o.cache.hitForMiss)
  }

  /**
   * Whether the store is known to be failing writes: the last put failed. A write happens after
   * the headers went out, so only the responses after a failed one can say so (Cache-Status
   * without `stored`, issue 10).
   */
  get failing (): boolean {
    return this.#failing
  }

  /** Size of the hit-for-miss record. */
  stats (): BoundedMapStats {
    return this.#uncacheable.stats()
  }

  /**
   * Decides whether the response a flight leads may be stored, records why (GET /explain), and
   * when it may, writes it once the flight's body has ended complete (a task tests await).
   */
  admit (ctx: AdmitContext): Admission {
    const verdict = this.judge(ctx)
    return verdict.kind === 'storable' ? this.write(verdict, ctx.flight) : verdict
  }

  /**
   * The first half of admit, from the response's head alone, before any byte of its body is
   * read: whether it may be stored (recorded for GET /explain). A refusal of the response's
   * own marks the URL uncacheable. A response judged storable is written by write().
   */
  judge ({ req, directives, head, bypassed, now, post = false }: Omit<AdmitContext, 'flight'>): Verdict {
    const answer = originAnswer(req, directives, head, post ? 'POST' : 'GET')
    const prepared = post ? preparePost(answer, req.route) : prepareEntry(answer, req.route)

    const declared = Number(single(head.headers['content-length']))
    let detail = prepared.storable ? undefined : prepared.detail
    if (prepared.storable && Number.isFinite(declared) && declared > this.#o.cache.maxObjectSize) detail = 'too-large'
    const spec = mergeSpec(req.route.key.headers, req.route.key.cookies, prepared.storable ? prepared.varyNames : [])
    const values = variantValues(spec, req.forward)
    const decision = {
      at: head.responseTime,
      status: head.status,
      stored: detail === undefined,
      detail,
      freshnessSource: prepared.storable ? prepared.freshness.source : undefined,
      variant: variantId(values)
    }
    this.#o.decisions.record(req.key, decision, values)
    if (detail !== undefined) {
      // Only the response's own refusal says something about the URL: a refusal that concerns
      // this request (credentials, request no-store), an origin error or a body too large
      // neither marks the URL uncacheable nor deletes the stored response others rely on
      // (a failed revalidation leaves it for stale-if-error).
      const aboutUrl = !post && detail !== 'too-large' && !REQUEST_SCOPED.has(detail) && head.status < 500
      // The next burst does not queue behind a fetch that cannot be shared (hit-for-miss).
      if (aboutUrl) this.markUncacheable(req.key, now)
      return { kind: 'refused', detail, aboutUrl, values }
    }
    if (!prepared.storable || bypassed) return { kind: 'bypassed', values }
    const jitter = req.route.ttlJitter
    // TTL jitter only shortens: entries stored together do not all expire together.
    const meta = jitter > 0 ? { ...prepared.meta, freshness: Math.floor(prepared.meta.freshness * (1 - this.#o.random() * jitter / 100)) } : prepared.meta
    // Language selection (cache/language.ts): also stored as its language's alias, a variant of
    // its own. The alias is one of the URL's variants for the cap, so a cap of 1 leaves no room for it.
    const alias = req.route.languageSelection && this.#o.cache.maxVariants > 1 ? languageAlias(spec, values, head.headers) : undefined
    return { kind: 'storable', key: req.key, keep: req.route.keep, meta, values, alias, decision }
  }

  /** The second half of admit: writes a response judged storable once the flight's body has ended complete. */
  write (verdict: Storable, flight: Flight): Admission {
    const { key, keep, meta, values, alias, decision } = verdict
    const write = (async () => {
      const end = await flight.end
      const entry = end.complete && end.body !== undefined ? { ...meta, body: end.body, vary: values } : undefined
      // The alias before the response's own variant, so that the cap, which drops the least
      // recently stored, drops the alias first.
      if (entry !== undefined && alias !== undefined) await this.put(key, variantId(alias), { ...entry, vary: alias }, keep)
      const put = entry !== undefined && await this.put(key, variantId(values), entry, keep)
      if (!put) {
        const why = !end.complete ? 'body-incomplete' : end.body === undefined ? 'too-large' : 'store-failed'
        this.#o.decisions.record(key, { ...decision, stored: false, detail: why }, values)
      }
      return put
    })()
    this.#o.tasks.run('store', async () => await write)
    return { kind: 'storing', write, values }
  }

  /** Stores an entry with a TTL covering its freshness, stale windows and `keep`; false when the store failed. */
  async put (url: CacheKey, variant: VariantId, entry: CacheEntry, keep: number): Promise<boolean> {
    const ttlMs = Math.max(1, Math.ceil(retention(entry, keep)))
    try {
      await this.#o.store.put(url, variant, entry, { ttlMs, maxVariants: this.#o.cache.maxVariants })
      this.#failing = false
      return true
    } catch (err) {
      this.#failing = true
      this.#o.onStoreError('put', err)
      return false
    }
  }

  async deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    try {
      await this.#o.store.deleteVariant(url, variant)
    } catch (err) {
      this.#o.onStoreError('delete', err)
    }
  }
}
