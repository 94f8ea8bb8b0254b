/**
 * Revalidation in the foreground (RFC 9111 §4.3): a conditional request with the stored
 * entry's validators, or a full fetch that replaces it when it has none. A matching 304
 * freshens the stored entry (§4.3.4); another response is handled as a miss that already has
 * its response. Concurrent revalidations of one URL and variant by requests without
 * credentials share one conditional request; each then answers by its own directives.
 */
import type { Directives } from '../cache/cache-control.ts'
import type { CacheEntry } from '../cache/entry.ts'
import { hasValidators, merge304Headers, notModifiedMatches, validatorHeaders } from '../cache/conditional.ts'
import { currentAge } from '../cache/freshness.ts'
import { NO_VARIANT } from '../cache/key.ts'
import { ERROR_STATUSES, mayServeStaleOnError } from '../cache/policy.ts'
import { prepareEntry } from '../cache/prepare.ts'
import { implicitAllowed, REQUEST_SCOPED } from '../cache/storable.ts'
import type { Clock } from '../clock.ts'
import type { GatewayError } from '../errors.ts'
import type { OriginResponse } from '../origin/client.ts'
import { forFetch, gatewayError, staleAnswer, staleOrError } from './answers.ts'
import type { DecisionLog } from './explain.ts'
import type { OriginFetcher } from './origin-fetch.ts'
import type { StoreWriter } from './store-writer.ts'
import type { Answer, CacheRequest, Found, LifecycleEvent, MissContext } from './types.ts'

/** A revalidation's conditional request: a matching 304 (merged entry), another response, or no response. */
export type Conditional =
  | { kind: 'not-modified', entry: CacheEntry, stored: boolean }
  | { kind: 'response', res: OriginResponse, requestTime: number, responseTime: number }
  | { kind: 'failed', error: GatewayError }

export interface RevalidatorOptions {
  fetcher: OriginFetcher
  writer: StoreWriter
  decisions: DecisionLog
  clock: Clock
  /** The read-through's miss: a full response (or none) goes there, coalesced and stored like any. */
  miss: (ctx: MissContext) => Promise<Answer>
  onEvent: (event: LifecycleEvent) => void
}

export class Revalidator {
  readonly #o: RevalidatorOptions
  /** Conditional revalidations in flight, by URL and variant, shared by concurrent requests without credentials. */
  readonly #pending = new Map<string, Promise<Conditional>>()

  constructor (options: RevalidatorOptions) {
    this.#o = options
  }

  /** Revalidates `entry` for this request; `detail` says why (the decision's), `request…` when the client asked. */
  async revalidate (req: CacheRequest, directives: Directives, found: Found, entry: CacheEntry, detail: string): Promise<Answer> {
    const fwd = detail.startsWith('request') ? 'request' : 'stale'
    const miss = async (already?: MissContext['already']): Promise<Answer> => await this.#o.miss({ req, directives, found, status: { fwd, detail }, stale: entry, already })
    if (!hasValidators(entry)) return await miss()
    const id = `${req.key}\n${found.variant ?? '?'}`
    const shareable = implicitAllowed(req.headers, req.route)
    const pending = shareable ? this.#pending.get(id) : undefined
    if (pending !== undefined) {
      this.#o.onEvent({ type: 'collapsed', route: req.route.name })
      const result = await pending
      const now = this.#o.clock.now()
      if (result.kind === 'not-modified') {
        return { kind: 'entry', entry: result.entry, age: currentAge(result.entry, now), cacheStatus: { fwd, fwdStatus: 304, collapsed: true }, outcome: 'revalidated' }
      }
      if (result.kind === 'failed') return staleOrError(entry, directives, result.error, fwd, now)
      if (ERROR_STATUSES.has(result.res.status) && mayServeStaleOnError(entry, directives, now)) return staleAnswer(entry, fwd, now, result.res.status)
      // The leader streams the new response through a flight (joined here) or served stale.
      return await miss()
    }
    const conditional = this.#conditional(req, found, entry)
    if (shareable) {
      this.#pending.set(id, conditional)
      const forget = (): void => { if (this.#pending.get(id) === conditional) this.#pending.delete(id) }
      conditional.then(forget, forget)
    }
    const result = await conditional
    const now = this.#o.clock.now()
    if (result.kind === 'not-modified') {
      const merged = result.entry
      return { kind: 'entry', entry: merged, age: currentAge(merged, now), cacheStatus: { fwd, fwdStatus: 304, ...(result.stored ? { stored: true } : {}) }, outcome: 'revalidated' }
    }
    if (result.kind === 'failed') return staleOrError(entry, directives, result.error, fwd, now)
    const { res } = result
    if (ERROR_STATUSES.has(res.status) && mayServeStaleOnError(entry, directives, now)) {
      res.body.resume()
      return staleAnswer(entry, fwd, now, res.status)
    }
    // A full response replaces the entry: treat it like a miss that already has its response.
    return await miss({ res, requestTime: result.requestTime, responseTime: result.responseTime })
  }

  /** The conditional request of a revalidation and, on a matching 304, the merged entry. Never rejects. */
  async #conditional (req: CacheRequest, found: Found, entry: CacheEntry): Promise<Conditional> {
    let fetched
    try {
      fetched = await this.#o.fetcher.get(req, { ...forFetch(req.forward), ...validatorHeaders(entry) })
    } catch (err) {
      return { kind: 'failed', error: gatewayError(err) }
    }
    const { res, requestTime, responseTime } = fetched
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

  /** RFC 9111 §4.3.4: freshen the stored response with the 304's fields; the body is kept. */
  async #merge304 (req: CacheRequest, found: Found, entry: CacheEntry, headers: Record<string, string | string[]>, requestTime: number, responseTime: number): Promise<CacheEntry> {
    const merged = merge304Headers(entry.headers, headers, responseTime)
    const prepared = prepareEntry({
      url: req.key, method: 'GET', requestHeaders: req.headers, request: new Map(), status: entry.status, headers: merged, requestTime, responseTime
    }, req.route)
    const variant = found.variant ?? NO_VARIANT
    this.#o.decisions.record(req.key, {
      at: responseTime,
      status: entry.status,
      stored: prepared.storable,
      detail: prepared.storable ? undefined : prepared.detail,
      freshnessSource: prepared.storable ? prepared.freshness.source : undefined,
      variant
    }, entry.vary)
    if (!prepared.storable) {
      // The origin now forbids storing it (no-store, private...): drop it. A refusal that
      // concerns only this request (credentials) leaves it to the clients it serves.
      if (!REQUEST_SCOPED.has(prepared.detail)) await this.#o.writer.deleteVariant(req.key, variant)
      return entry
    }
    const next: CacheEntry = { ...prepared.meta, body: entry.body, vary: entry.vary }
    await this.#o.writer.put(req.key, variant, next, req.route.keep)
    return next
  }
}
