/**
 * The read-through's origin requests: each is timed on the injected clock (RFC 9111 §4.2.3
 * request_time and response_time) and reported as one `origin` lifecycle event, failed or not.
 */
import type { Clock } from '../clock.ts'
import type { OriginClient } from '../origin/client.ts'
import type { Fetched } from './coalesce.ts'
import type { CacheRequest, LifecycleEvent } from './types.ts'

export interface OriginFetchOptions {
  origin: Pick<OriginClient, 'request'>
  clock: Clock
  onEvent: (event: LifecycleEvent) => void
}

export class OriginFetcher {
  readonly #o: OriginFetchOptions

  constructor (options: OriginFetchOptions) {
    this.#o = options
  }

  /** A GET of the request's path with these headers; rejects as the origin client does. */
  async get (req: CacheRequest, headers: Record<string, string | string[]>, interim?: CacheRequest['interim']): Promise<Fetched> {
    const requestTime = this.#o.clock.now()
    try {
      const res = await this.#o.origin.request(req.route, { method: 'GET', path: req.path, headers, onInfo: interim })
      const responseTime = this.#o.clock.now()
      this.#o.onEvent({ type: 'origin', route: req.route.name, status: res.status, seconds: (responseTime - requestTime) / 1000 })
      return { res, requestTime, responseTime }
    } catch (err) {
      this.#o.onEvent({ type: 'origin', route: req.route.name, status: 'error', seconds: (this.#o.clock.now() - requestTime) / 1000 })
      throw err
    }
  }
}
