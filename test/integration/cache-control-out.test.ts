// Cache-Control going downstream, and targeted fields (RFC 9213): Cachegate-Cache-Control and
// CDN-Cache-Control govern this cache's storage in place of Cache-Control.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `ccout${++prefixes}:` } } })
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('the origin\'s Cache-Control goes downstream unchanged by default', async (t) => {
      const cc = 'public, max-age=60, stale-while-revalidate=30'
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': cc }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const miss = await gw.get('/cc')
      await gw.settled()
      const hit = await gw.get('/cc')
      t.match(hit.header('cache-status'), /^cachegate; hit/)
      t.equal(miss.header('cache-control'), cc)
      t.equal(hit.header('cache-control'), cc)
    })

    t.test('a route downstreamCacheControl replaces the origin\'s field downstream but not for storage', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=600' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, downstreamCacheControl: 'public, max-age=60' }] } })
      const miss = await gw.get('/cc')
      t.equal(miss.header('cache-control'), 'public, max-age=60')
      await gw.settled()
      gw.clock.advance(300_000)
      const hit = await gw.get('/cc')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=300', 'stored for the origin\'s 600 s')
      t.equal(hit.header('cache-control'), 'public, max-age=60')
      t.equal(origin.count(), 1)
    })

    t.test('Cachegate-Cache-Control wins over Cache-Control for storage and is removed downstream', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'no-store', 'cachegate-cache-control': 'max-age=300' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const miss = await gw.get('/targeted')
      t.equal(miss.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; stored')
      await gw.settled()
      gw.clock.advance(100_000)
      const hit = await gw.get('/targeted')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=200')
      for (const res of [miss, hit]) {
        t.equal(res.header('cache-control'), 'no-store', 'downstream caches still see no-store')
        t.equal(res.header('cachegate-cache-control'), undefined)
      }
      t.equal(origin.count(), 1)
    })

    t.test('CDN-Cache-Control wins over Cache-Control for storage', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=300' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/cdn')
      await gw.settled()
      gw.clock.advance(100_000)
      const hit = await gw.get('/cdn')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=200')
      t.equal(hit.header('cache-control'), 'max-age=10')
      t.equal(origin.count(), 1)
    })

    t.test('Cachegate-Cache-Control wins over CDN-Cache-Control', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cdn-cache-control': 'max-age=300', 'cachegate-cache-control': 'no-store' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await gw.get('/both')
      t.equal(first.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; detail=no-store')
      await gw.settled()
      await gw.get('/both')
      t.equal(origin.count(), 2)
    })
  })
}

behaviours('memory')
behaviours('redis')
