/**
 * The answers and origin requests the read-through's parts share: serving a stale entry when
 * the origin failed (RFC 5861 §4 stale-if-error), the error answer otherwise, a collapsed
 * waiter's answer, and the headers of a fetch meant for the cache. Pure: `now` is passed in.
 */
import { SURROGATE_CAPABILITY, type Directives } from '../cache/cache-control.ts'
import type { CacheStatus } from '../cache/cache-status.ts'
import type { CacheEntry } from '../cache/entry.ts'
import { currentAge } from '../cache/freshness.ts'
import { decide, mayServeStaleOnError } from '../cache/policy.ts'
import { prepareEntry } from '../cache/prepare.ts'
import { GatewayError } from '../errors.ts'
import type { FlightHead, Shared } from './coalesce.ts'
import type { Answer, CacheRequest, Outcome } from './types.ts'

/** Fields of the client's request that must not reach the origin on a fetch meant for the cache. */
const CLIENT_CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range']
/** The client's validators a miss with no stored response forwards (RFC 9111 §4.3.2); never If-Range or Range. */
export const MISS_CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'] as const

/** RFC 9111 §5.2.1.7: only-if-cached and no stored response may answer (`fwd` says why), so 504. */
export function onlyIfCached (fwd: 'request' | 'miss' | 'stale'): Answer {
  return { kind: 'error', error: new GatewayError('CG_ERR_ONLY_IF_CACHED'), cacheStatus: { fwd, detail: 'only-if-cached' }, outcome: 'error' }
}

/** An origin failure as the catalogue's error (the origin client already maps its own). */
export function gatewayError (err: unknown): GatewayError {
  return err instanceof GatewayError ? err : new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err })
}

/** The stored entry served because the origin failed or answered with an error (stale-if-error). */
export function staleAnswer (entry: CacheEntry, fwd: CacheStatus['fwd'], now: number, fwdStatus?: number): Answer {
  const d = decide(entry, new Map(), now)
  return {
    kind: 'entry',
    entry,
    age: d.age,
    cacheStatus: { hit: true, fwd: fwd ?? 'stale', ...(fwdStatus !== undefined ? { fwdStatus } : {}), ttl: d.ttl / 1000, detail: 'stale-if-error' },
    outcome: 'stale'
  }
}

/** After an origin failure: the stale entry when stale-if-error allows it, else the error. */
export function staleOrError (entry: CacheEntry | undefined, directives: Directives, error: GatewayError, fwd: CacheStatus['fwd'], now: number): Answer {
  if (entry !== undefined && mayServeStaleOnError(entry, directives, now)) return staleAnswer(entry, fwd, now)
  return originErrorAnswer(error, fwd !== undefined ? { fwd } : {})
}

/** An origin failure answered as the error, its Cache-Status detail added to `status`. */
function originErrorAnswer (error: GatewayError, status: CacheStatus): Answer {
  const detail = error.code === 'CG_ERR_ORIGIN_TIMEOUT' ? 'origin-timeout' : error.code === 'CG_ERR_ORIGIN_BAD_RESPONSE' ? 'origin-bad-response' : 'origin-unreachable'
  return { kind: 'error', error, cacheStatus: { ...status, detail }, outcome: 'error' }
}

/**
 * The response a flight's waiters are answered with once its body is complete: the entry the
 * leader stores (prepared from the same request and response, with its variant values), so a
 * waiter gets what a hit a moment later gets: the stored fields (never Set-Cookie or the fields
 * of a qualified no-cache), Age from the response's corrected initial age. Undefined when the
 * response is not storable (it is then not shared either).
 */
export function sharedEntryMeta (req: CacheRequest, directives: Directives, head: FlightHead, values: Record<string, string | null>): Omit<CacheEntry, 'body'> | undefined {
  const prepared = prepareEntry({
    url: req.key,
    method: 'GET',
    requestHeaders: req.headers,
    request: directives,
    status: head.status,
    headers: head.headers,
    requestTime: head.requestTime,
    responseTime: head.responseTime
  }, req.route)
  return prepared.storable ? { ...prepared.meta, vary: values } : undefined
}

/**
 * A waiter's answer from the flight it joined (RFC 9211 `fwd=uri-miss; collapsed` with the
 * origin's status): like a stored entry when the body arrived whole, else the stream with the
 * stored fields and Age (RFC 9111 §5.1), else the flight's error (the body failed before
 * anything was sent to this client).
 */
export function collapsedAnswer (shared: Shared, now: number): Answer {
  const cacheStatus: CacheStatus = { fwd: 'uri-miss', fwdStatus: shared.head.status, collapsed: true }
  if (shared.kind === 'entry') return { kind: 'entry', entry: shared.entry, age: currentAge(shared.entry, now), cacheStatus, outcome: 'miss' }
  if (shared.kind === 'failed') return originErrorAnswer(shared.error, cacheStatus)
  const { stored } = shared
  // A waiter is a later request: never the fields the stored response leaves out (§5.2.2.4).
  const headers = stored === undefined ? shared.head.headers : { ...stored.headers, age: String(Math.floor(currentAge(stored, now) / 1000)) }
  return { kind: 'stream', status: shared.head.status, headers, body: shared.body, cacheStatus, outcome: 'miss' }
}

/** Headers of a fetch for the cache: the client's conditionals removed (except those kept), Surrogate-Capability set. */
export function forFetch (forward: Readonly<Record<string, string | string[]>>, keep: readonly string[] = []): Record<string, string | string[]> {
  const out = { ...forward }
  for (const name of CLIENT_CONDITIONALS) if (!keep.includes(name)) delete out[name]
  // This cache honours Surrogate-Control (cache/cache-control.ts); a client's own claim is replaced.
  out['surrogate-capability'] = SURROGATE_CAPABILITY
  return out
}

/**
 * The outcome of a response streamed from the origin. Revalidating a stale entry: a new
 * storable response is `revalidated`, an origin 5xx passed through (no stale-if-error) an
 * `error`, any other response not stored a `pass`. A miss: `miss`, or `pass` when not stored.
 */
export function passedOutcome (revalidating: boolean, status: number, refused: string | undefined): Outcome {
  if (revalidating && status >= 500) return 'error'
  if (refused !== undefined) return 'pass'
  return revalidating ? 'revalidated' : 'miss'
}
