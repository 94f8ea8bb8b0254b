// Shared setup for the unit tests of the read-through's parts: one route from the real config
// loader, a request for it, a memory store, a real origin client, and a manual clock.
import type { Test } from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { normalizeAbsoluteUrl, type CacheKey } from '../../src/cache/key.ts'
import { parseConfig } from '../../src/config/load.ts'
import type { GatewayConfig } from '../../src/config/types.ts'
import { OriginFetcher } from '../../src/lifecycle/origin-fetch.ts'
import type { CacheRequest, LifecycleEvent } from '../../src/lifecycle/types.ts'
import { OriginClient } from '../../src/origin/client.ts'
import { MemoryStore } from '../../src/store/memory.ts'

export function key (url: string): CacheKey {
  const n = normalizeAbsoluteUrl(url)
  if (!n.ok) throw new Error(n.reason)
  return n.key
}

export function config (origin: string, route: Record<string, unknown> = {}): GatewayConfig {
  return parseConfig(JSON.stringify({ routes: [{ origin, ...route }] }), 'test.yaml', {})
}

export interface Parts {
  config: GatewayConfig
  clock: ManualClock
  store: MemoryStore
  events: LifecycleEvent[]
  fetcher: OriginFetcher
  /** A GET of `path` on the route, with these forwarded headers (the client's too). */
  request: (path: string, headers?: Record<string, string>) => CacheRequest
}

/** The parts over one route to `origin`; the origin client is closed on teardown. */
export function parts (t: Test, origin: string, route: Record<string, unknown> = {}): Parts {
  const cfg = config(origin, route)
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 1024 * 1024, clock })
  const events: LifecycleEvent[] = []
  const client = new OriginClient(cfg.routes)
  t.teardown(async () => await client.close())
  const fetcher = new OriginFetcher({ origin: client, clock, onEvent: (e) => events.push(e) })
  const r = cfg.routes[0]
  if (r === undefined) throw new Error('no route')
  return {
    config: cfg,
    clock,
    store,
    events,
    fetcher,
    request: (path, headers = {}) => ({ route: r, key: key(`http://gateway.test${path}`), path, method: 'GET', headers, forward: { ...headers } })
  }
}
