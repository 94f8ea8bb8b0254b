/**
 * Purges on a real 3-master Redis Cluster: indexes and deletes never span slots (the store's
 * scripts touch one hash tag each), and invalidations reach the other instance's L1.
 */
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import type { Store } from '../../src/store/store.ts'
import { TieredStore } from '../../src/store/tiered.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedisCluster } from '../helpers/redis.ts'
import { catalog, get, isHit, OTHER, purge, SHOP, TOKEN } from './purge-helpers.ts'

const cluster = await startRedisCluster(t, { masters: 3 })
const origin = await startOrigin(t, catalog())
const clock = new ManualClock()
const config = {
  admin: { token: TOKEN },
  routes: [{ origin: origin.url, l1: true }],
  redis: { cluster: cluster.nodes, commandTimeout: '2s' }
}
const a = await withGateway(t, { config, clock })
const b = await withGateway(t, { config, clock })

// Many URLs, so that their keys land on every master.
const PRODUCTS = Array.from({ length: 30 }, (_, i) => `/products/${i}`)

async function primeAll (gw: GatewayHandle): Promise<void> {
  for (const path of PRODUCTS) await get(gw, SHOP, path)
  await get(gw, SHOP, '/about')
  await get(gw, SHOP, '/categories/3')
  await get(gw, OTHER, '/products/1')
}

/** The gateway's TieredStore, under whatever wraps it (metrics). */
function tiered (gw: GatewayHandle): TieredStore {
  let store: Store = gw.gateway.store
  while (!(store instanceof TieredStore) && 'inner' in store) store = (store as { inner: Store }).inner
  if (!(store instanceof TieredStore)) throw new Error(`the gateway's store is ${store.kind}, not tiered`)
  return store
}

/**
 * Purges through A and resolves once B has applied the invalidation of every URL in `urls`
 * (or a `*`). On a Cluster, pub/sub reaches the other nodes over the cluster bus, after
 * PUBLISH answered, and ioredis sends each PUBLISH to any node: messages may come in any order.
 */
async function purgeSeenByB (body: unknown, urls: string[]): Promise<Awaited<ReturnType<typeof purge>>> {
  let off = (): void => undefined
  const waiting = new Set(urls)
  const seen = new Promise<void>((resolve) => {
    off = tiered(b).onInvalidation((m) => {
      if (m === '*') waiting.clear()
      waiting.delete(m)
      if (waiting.size === 0) resolve()
    })
  })
  const res = await purge(a, body)
  await seen
  off()
  return res
}

async function hits (gw: GatewayHandle, host: string, paths: string[]): Promise<number> {
  let n = 0
  for (const path of paths) if (isHit(await get(gw, host, path))) n++
  return n
}

t.test('the gateway runs on the cluster with an L1', async (t) => {
  t.equal(a.gateway.store.kind, 'tiered')
})

t.test('a tag purge on a cluster removes every tagged entry, on every master, and nothing else', async (t) => {
  await primeAll(a)
  t.equal(await hits(b, SHOP, PRODUCTS), PRODUCTS.length, 'B: every product is a hit (and copied into its L1)')
  const res = await purgeSeenByB({ tags: ['products'] }, [...PRODUCTS.map((path) => `http://${SHOP}${path}`), `http://${OTHER}/products/1`])
  t.equal(res.status, 200)
  t.match(res.body, { purged: PRODUCTS.length + 1 }, 'the products of both hosts')
  t.equal(await hits(b, SHOP, PRODUCTS), 0, 'B misses every product')
  t.notOk(isHit(await get(b, OTHER, '/products/1')), 'the other host\'s product carried the tag too')
  t.ok(isHit(await get(b, SHOP, '/about')), 'an untagged page stays')
  t.ok(isHit(await get(b, SHOP, '/categories/3')), 'a page with other tags stays')
})

t.test('prefix, URL, host, soft and all purges on a cluster', async (t) => {
  await primeAll(a)
  t.match((await purgeSeenByB({ prefixes: [`http://${SHOP}/products/1`] }, ['/products/1', '/products/15'].map((path) => `http://${SHOP}${path}`))).body, { purged: 11 }, '/products/1 and /products/10-19')
  t.equal(await hits(b, SHOP, ['/products/1', '/products/15', '/products/2', '/about']), 2)

  t.match((await purgeSeenByB({ urls: [`http://${SHOP}/products/2`] }, [`http://${SHOP}/products/2`])).body, { purged: 1 })
  t.notOk(isHit(await get(b, SHOP, '/products/2')))

  t.match((await purgeSeenByB({ tags: ['category-3'], mode: 'soft' }, [`http://${SHOP}/categories/3`])).body, { marked: 1 })
  t.match((await b.get('/categories/3', { host: SHOP })).header('cache-status'), /fwd=stale/, 'B serves the soft-purged page stale')
  await b.settled()

  const host = await purgeSeenByB({ hosts: [OTHER] }, [`http://${OTHER}/products/1`])
  t.match(host.body, { purged: 1 })
  t.ok(isHit(await get(b, SHOP, '/about')), 'another host stays')

  const all = await purgeSeenByB({ all: true }, ['/about', '/products/3', '/categories/3'].map((path) => `http://${SHOP}${path}`))
  t.ok((all.body.purged as number) > 20)
  t.equal(await hits(b, SHOP, ['/about', '/products/3', '/categories/3']), 0, 'all gone')
})
