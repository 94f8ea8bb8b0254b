/**
 * Refreshes without a client: the background revalidation of stale-while-revalidate and
 * refresh-ahead (RFC 5861 §3; one per URL and variant across every instance, through a lock
 * with a TTL so a crashed instance's lock expires), and the refetch of a revalidate purge.
 * Both run as tasks (tests and shutdown await them) and drain what they fetch, so the flight
 * completes and stores it. The fetching itself is the read-through's (a RefreshHost).
 */
import { finished } from 'node:stream/promises'
import type { CacheEntry } from '../cache/entry.ts'
import type { CacheKey } from '../cache/key.ts'
import { originOf } from '../cache/key.ts'
import { decide } from '../cache/policy.ts'
import { variantId } from '../cache/vary.ts'
import type { Clock } from '../clock.ts'
import type { RouteConfig } from '../config/types.ts'
import type { Locks } from '../coordination/locks.ts'
import type { Tasks } from './tasks.ts'
import type { Answer, CacheRequest, Found, LifecycleEvent } from './types.ts'

/** What a refresh asks of the read-through. */
export interface RefreshHost {
  find: (req: CacheRequest) => Promise<Found>
  /** A fetch for the cache (coalesced with misses, stored when allowed), as a miss of a purged entry. */
  refetch: (req: CacheRequest, found: Found) => Promise<Answer>
  /** Revalidates `entry` (conditional request, or full fetch without validators). */
  revalidate: (req: CacheRequest, found: Found, entry: CacheEntry) => Promise<Answer>
}

export interface RefreshOptions {
  host: RefreshHost
  locks: Locks
  tasks: Tasks
  clock: Clock
  onStoreError: (op: 'lock' | 'unlock', err: unknown) => void
  onEvent: (event: LifecycleEvent) => void
}

export class Refresher {
  readonly #o: RefreshOptions
  /** Background refreshes in progress in this instance, by URL + variant. */
  readonly #refreshing = new Set<string>()

  constructor (options: RefreshOptions) {
    this.#o = options
  }

  /**
   * Fetches a URL from the origin without a client and stores the answer like a miss (a
   * revalidate purge): a plain GET, so the variant refreshed is the one a request without
   * headers selects. Coalesced with misses for the same key. Resolves true when the origin
   * answered, false otherwise. Never rejects.
   */
  async refetch (route: RouteConfig, key: CacheKey, path: string): Promise<boolean> {
    return await new Promise<boolean>((resolve) => {
      this.#o.tasks.run('refresh', async () => {
        let ok = false
        try {
          const req: CacheRequest = { route, key, path, method: 'GET', headers: {}, forward: forwardedFor(route, key) }
          this.#o.onEvent({ type: 'refresh', route: route.name, result: 'started' })
          const found = await this.#o.host.find(req)
          const answer = await this.#o.host.refetch(req, { ...found, entry: null })
          if (answer.kind === 'stream') {
            // No client reads it: drain, so the flight completes and stores it.
            answer.body.resume()
            await finished(answer.body).catch(() => undefined)
          }
          ok = answer.kind === 'entry' || (answer.kind === 'stream' && answer.status < 500)
        } finally {
          this.#o.onEvent({ type: 'refresh', route: route.name, result: ok ? 'succeeded' : 'failed' })
          resolve(ok)
        }
      })
    })
  }

  /**
   * RFC 5861 §3: one background revalidation per URL and variant across every instance
   * sharing the store; the client that triggered it has already been answered from the stale
   * entry.
   */
  inBackground (req: CacheRequest, entry: CacheEntry): void {
    const variant = variantId(entry.vary)
    const id = `${req.key}\n${variant}`
    if (this.#refreshing.has(id)) return
    this.#refreshing.add(id)
    const route = req.route.name
    this.#o.tasks.run('refresh', async () => {
      let token: string | null = null
      try {
        try {
          token = await this.#o.locks.acquire(req.key, 'refresh', variant, refreshLockTtl(req.route))
        } catch (err) {
          this.#o.onStoreError('lock', err)
          return
        }
        if (token === null) return // another instance is refreshing this key
        this.#o.onEvent({ type: 'refresh', route, result: 'started' })
        const found = await this.#o.host.find(req)
        const current = found.entry ?? entry
        const d = decide(current, new Map(), this.#o.clock.now())
        if (d.kind === 'fresh' && !req.route.refreshAhead) {
          this.#o.onEvent({ type: 'refresh', route, result: 'succeeded' })
          return // refreshed meanwhile
        }
        // Revalidated under the variant it was read from: a look now may find another entry
        // for this request (language selection: the answer to its language, or the alias).
        const answer = await this.#o.host.revalidate({ ...req, method: 'GET' }, { ...found, entry: current, variant: found.entry !== null ? found.variant : variant }, current)
        if (answer.kind === 'stream') {
          // A full response is stored by the flight; drain it since no client reads it.
          answer.body.resume()
        }
        const ok = answer.kind !== 'error' && !(answer.kind === 'entry' && answer.cacheStatus.detail === 'stale-if-error') &&
          !(answer.kind === 'stream' && answer.status >= 500)
        this.#o.onEvent({ type: 'refresh', route, result: ok ? 'succeeded' : 'failed' })
      } finally {
        this.#refreshing.delete(id)
        if (token !== null) await this.#o.locks.release(req.key, 'refresh', variant, token).catch((err: unknown) => { this.#o.onStoreError('unlock', err) })
      }
    })
  }
}

/** The forwarded fields of a refetch without a client: the scheme and host of the key's origin. */
function forwardedFor (route: RouteConfig, key: CacheKey): Record<string, string> {
  const origin = originOf(key)
  const scheme = origin.slice(0, origin.indexOf('://'))
  const host = origin.slice(scheme.length + 3)
  const forward: Record<string, string> = { 'x-forwarded-proto': scheme }
  if (!route.key.headers.includes('x-forwarded-host')) forward['x-forwarded-host'] = host
  return forward
}

/** A refresh lock outlives the longest the refresh may take (connect + headers + body), at most a minute. */
function refreshLockTtl (route: RouteConfig): number {
  return Math.min(60_000, route.timeouts.connect + route.timeouts.headers + route.timeouts.body)
}
