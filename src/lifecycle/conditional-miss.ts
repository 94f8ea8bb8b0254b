/**
 * RFC 9111 §4.3.2: with nothing stored, the client's own conditional request may go to the
 * origin. A 304 or 412 answers that client (and those sending the same validators at the same
 * time, who share the request) and is never stored; any other answer is handled as a miss
 * that already has its response: stored when allowed, and joined by the waiters.
 */
import { Readable } from 'node:stream'
import type { Directives } from '../cache/cache-control.ts'
import type { CacheStatus } from '../cache/cache-status.ts'
import { single } from '../cache/headers.ts'
import type { Clock } from '../clock.ts'
import type { GatewayError } from '../errors.ts'
import { forFetch, gatewayError, MISS_CONDITIONALS, staleOrError } from './answers.ts'
import type { OriginFetcher } from './origin-fetch.ts'
import type { Answer, CacheRequest, Found, LifecycleEvent, MissContext } from './types.ts'

/** Answers to a client's conditional request that are that client's alone: relayed, never stored. */
const CONDITIONAL_ONLY = new Set([304, 412])

/** A conditional miss's origin answer, as concurrent identical conditional misses share it. */
type Shared =
  | { kind: 'answered', status: number, headers: Record<string, string | string[]> }
  | { kind: 'full' }
  | { kind: 'failed', error: GatewayError }

export interface ConditionalMissOptions {
  fetcher: OriginFetcher
  clock: Clock
  /** The read-through's miss: a full answer goes there as a response already in hand. */
  miss: (ctx: MissContext) => Promise<Answer>
  onEvent: (event: LifecycleEvent) => void
}

/** Whether a miss carries the client's validators (and so goes to the origin as its own conditional request). */
export function isConditional (req: CacheRequest): boolean {
  return MISS_CONDITIONALS.some((name) => req.forward[name] !== undefined)
}

export class ConditionalMisses {
  readonly #o: ConditionalMissOptions
  /** Conditional misses in flight, by URL, variant and the client's validators. */
  readonly #pending = new Map<string, Promise<Shared>>()

  constructor (options: ConditionalMissOptions) {
    this.#o = options
  }

  async handle (req: CacheRequest, directives: Directives, found: Found, status: CacheStatus): Promise<Answer> {
    const validators = MISS_CONDITIONALS.map((name) => single(req.forward[name]) ?? '').join('\n')
    const id = `${req.key}\n${found.variant ?? '?'}\n${validators}`
    const shareable = req.headers.authorization === undefined && !directives.has('no-store')
    const pending = shareable ? this.#pending.get(id) : undefined
    if (pending !== undefined) {
      this.#o.onEvent({ type: 'collapsed', route: req.route.name })
      const result = await pending
      if (result.kind === 'answered') {
        return { kind: 'stream', status: result.status, headers: result.headers, body: Readable.from([]), cacheStatus: { ...status, fwdStatus: result.status, collapsed: true }, outcome: 'miss' }
      }
      if (result.kind === 'failed') return staleOrError(undefined, directives, result.error, status.fwd, this.#o.clock.now())
      return await this.#o.miss({ req, directives, found, status })
    }
    let settle: (result: Shared) => void = () => {}
    if (shareable) {
      const shared = new Promise<Shared>((resolve) => { settle = resolve })
      this.#pending.set(id, shared)
      const forget = (): void => { if (this.#pending.get(id) === shared) this.#pending.delete(id) }
      shared.then(forget, forget)
    }
    let fetched
    try {
      fetched = await this.#o.fetcher.get(req, forFetch(req.forward, MISS_CONDITIONALS), req.interim)
    } catch (err) {
      const error = gatewayError(err)
      settle({ kind: 'failed', error })
      return staleOrError(undefined, directives, error, status.fwd, this.#o.clock.now())
    }
    const { res } = fetched
    if (CONDITIONAL_ONLY.has(res.status)) {
      settle({ kind: 'answered', status: res.status, headers: res.headers })
      return { kind: 'stream', status: res.status, headers: res.headers, body: res.body, cacheStatus: { ...status, fwdStatus: res.status }, outcome: 'miss' }
    }
    // The miss registers its flight before its first await: waiters released below join it.
    const answer = this.#o.miss({ req, directives, found, status, already: fetched })
    settle({ kind: 'full' })
    return await answer
  }
}
