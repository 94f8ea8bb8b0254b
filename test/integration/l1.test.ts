/**
 * Two tiers, one truth: two gateway instances share one Redis, each with an in-memory L1 for
 * routes with `l1: true`. Purges and replacements on one instance drop the other's L1 copy.
 */
import t, { type Test } from 'tap'
import { ManualClock } from '../../src/clock.ts'
import type { Store } from '../../src/store/store.ts'
import { TieredStore } from '../../src/store/tiered.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'
import type { CacheKey, VariantId } from '../../src/cache/key.ts'
import { BULK_PURGE_URLS } from '../../src/invalidation/purge.ts'
import { catalog, get, isHit, purge, SHOP, TOKEN } from './purge-helpers.ts'

const redis = await startRedis(t)
let prefixN = 0

interface Pair { a: GatewayHandle, b: GatewayHandle, origin: Origin, clock: ManualClock }

async function pair (t: Test): Promise<Pair> {
  const origin = await startOrigin(t, catalog())
  const clock = new ManualClock()
  const config = {
    admin: { token: TOKEN },
    cache: { l1MaxTtl: '2s' },
    routes: [{ origin: origin.url, path: '/nol1' }, { origin: origin.url, l1: true }],
    redis: { url: redis.url, keyPrefix: `l${prefixN++}:`, commandTimeout: '2s' }
  }
  const a = await withGateway(t, { config, clock })
  const b = await withGateway(t, { config, clock })
  return { a, b, origin, clock }
}

/** The gateway's TieredStore, under whatever wraps it (metrics). */
function tiered (gw: GatewayHandle): TieredStore {
  let store: Store = gw.gateway.store
  while (!(store instanceof TieredStore) && 'inner' in store) store = (store as { inner: Store }).inner
  if (!(store instanceof TieredStore)) throw new Error(`the gateway's store is ${store.kind}, not tiered`)
  return store
}

/** Stores the page through A, then makes B hold an L1 copy that it has served from. */
async function warm (t: Test, { a, b }: Pair, path: string): Promise<void> {
  await get(a, SHOP, path)
  t.ok(isHit(await get(b, SHOP, path)), 'B: a hit from Redis, copied into its L1')
  const before = tiered(b).stats().l1Hits
  t.ok(isHit(await get(b, SHOP, path)), 'B: a hit again')
  t.equal(tiered(b).stats().l1Hits, before + 1, 'B served it from L1, without Redis')
}

t.test('the gateway wraps Redis in a tiered store when a route has l1', async (t) => {
  const { a } = await pair(t)
  t.equal(a.gateway.store.kind, 'tiered')
})

t.test('a hard purge on instance A makes instance B miss on its next request although B held an L1 copy', async (t) => {
  const p = await pair(t)
  await warm(t, p, '/products/1')
  const res = await purge(p.a, { tags: ['product-1'] })
  t.match(res.body, { purged: 1 })
  const next = await get(p.b, SHOP, '/products/1')
  t.match(next.header('cache-status'), /fwd=uri-miss/, 'B misses')
  t.equal(next.body, `${SHOP}/products/1 v2`, 'and serves the new content')
})

t.test('a soft purge on instance A makes instance B serve stale (and refresh) although B held an L1 copy', async (t) => {
  const p = await pair(t)
  await warm(t, p, '/products/1')
  t.match((await purge(p.a, { urls: [`https://${SHOP}/products/1`], soft: true })).body, { marked: 1 })
  const stale = await p.b.get('/products/1', { host: SHOP })
  t.match(stale.header('cache-status'), /fwd=stale/, 'B answers stale')
  await p.b.settled()
  t.equal(p.origin.count('/products/1'), 2, 'B refreshed it in the background')
  const fresh = await get(p.b, SHOP, '/products/1')
  t.ok(isHit(fresh))
  t.equal(fresh.body, `${SHOP}/products/1 v2`)
  t.ok(isHit(await get(p.a, SHOP, '/products/1')), 'A sees the refreshed entry too')
})

t.test('a store replacement on instance A drops the L1 copy on instance B', async (t) => {
  const p = await pair(t)
  await warm(t, p, '/products/1')
  // A request that must not be served from the store: A fetches and replaces the entry.
  const replaced = await get(p.a, SHOP, '/products/1', { 'cache-control': 'no-cache' })
  t.equal(replaced.body, `${SHOP}/products/1 v2`)
  const next = await get(p.b, SHOP, '/products/1')
  t.ok(isHit(next), 'B: a hit')
  t.equal(next.body, `${SHOP}/products/1 v2`, 'of the replacement, not of its old L1 copy')
})

t.test('an unsafe method through instance A drops the L1 copy on instance B', async (t) => {
  const p = await pair(t)
  await warm(t, p, '/products/1')
  const post = await p.a.request('/products/1', { method: 'POST', headers: { host: SHOP, 'content-type': 'text/plain' }, body: 'x' })
  t.equal(post.status, 200)
  await p.a.settled()
  const next = await get(p.b, SHOP, '/products/1')
  t.match(next.header('cache-status'), /fwd=uri-miss/, 'B misses')
})

t.test('routes without l1 never use the L1', async (t) => {
  const p = await pair(t)
  await get(p.a, SHOP, '/nol1/x')
  const before = tiered(p.b).stats()
  t.ok(isHit(await get(p.b, SHOP, '/nol1/x')))
  t.ok(isHit(await get(p.b, SHOP, '/nol1/x')))
  const after = tiered(p.b).stats()
  t.equal(after.l1Hits, before.l1Hits, 'no L1 hit')
  t.equal(after.fills, before.fills, 'nothing copied into L1')
})

t.test('an L1 copy lives at most l1MaxTtl, then the next read goes to Redis again', async (t) => {
  const p = await pair(t)
  await warm(t, p, '/products/1')
  p.clock.advance(2001)
  const reads = tiered(p.b).stats().l2Reads
  t.ok(isHit(await get(p.b, SHOP, '/products/1')), 'still a hit (fresh for 60 s)')
  t.equal(tiered(p.b).stats().l2Reads, reads + 1, 'read from Redis: the L1 copy had expired')
})

t.test('a bulk purge (more than BULK_PURGE_URLS entries) on A also drops B\'s L1 copies', async (t) => {
  const p = await pair(t)
  await warm(t, p, '/products/1')
  // Entries written straight through A's store, as the gateway would store them.
  const now = p.clock.now()
  for (let i = 0; i < BULK_PURGE_URLS + 10; i++) {
    const url = `http://${SHOP}/bulk/${i}` as CacheKey
    await p.a.gateway.store.put(url, '' as VariantId, {
      url,
      status: 200,
      headers: { 'content-type': 'text/plain' },
      body: Buffer.from(`bulk ${i}`),
      requestTime: now,
      responseTime: now,
      initialAge: 0,
      freshness: 60_000,
      staleWhileRevalidate: 0,
      staleIfError: 0,
      vary: {},
      tags: ['bulk', 'products'],
      mustRevalidate: false,
      noCache: false,
      invalidatedAt: 0
    }, { ttlMs: 60_000, maxVariants: 8 })
  }
  t.ok(isHit(await get(p.b, SHOP, '/bulk/3')))
  t.ok(isHit(await get(p.b, SHOP, '/bulk/3')))
  const res = await purge(p.a, { tags: ['products'] })
  t.match(res.body, { purged: BULK_PURGE_URLS + 11 })
  t.match((await get(p.b, SHOP, '/products/1')).header('cache-status'), /fwd=uri-miss/, 'B misses the product')
  t.match((await get(p.b, SHOP, '/bulk/3')).header('cache-status'), /fwd=uri-miss/, 'and a bulk entry')
})
