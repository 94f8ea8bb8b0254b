/**
 * The HTTP PURGE method on the public listener (as in Varnish and Squid): off by default,
 * only from purgeMethod.allow addresses, purges the request's own key (hard).
 */
import t, { type Test } from 'tap'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'
import { catalog, get, isHit, SHOP } from './purge-helpers.ts'

const redis = await startRedis(t)
let prefixN = 0

async function setup (t: Test, purgeMethod?: Record<string, unknown>): Promise<{ gw: GatewayHandle, origin: Origin }> {
  const origin = await startOrigin(t, catalog())
  const gw = await withGateway(t, {
    config: {
      routes: [{ origin: origin.url, key: { ignoreQuery: ['utm_*'] } }],
      redis: { url: redis.url, keyPrefix: `m${prefixN++}:`, commandTimeout: '2s' },
      ...(purgeMethod !== undefined ? { purgeMethod } : {})
    }
  })
  await get(gw, SHOP, '/products/1?b=2&a=1')
  await get(gw, SHOP, '/products/2')
  return { gw, origin }
}

t.test('PURGE is refused with 405 while purgeMethod is disabled (the default), and purges nothing', async (t) => {
  const { gw, origin } = await setup(t)
  const res = await gw.request('/products/1?a=1&b=2', { method: 'PURGE', headers: { host: SHOP } })
  t.equal(res.status, 405)
  t.match(JSON.parse(res.body), { code: 'CG_ERR_METHOD_NOT_ALLOWED', message: /purgeMethod\.enabled/ })
  t.equal(origin.count(), 2, 'PURGE never reaches the origin')
  t.ok(isHit(await get(gw, SHOP, '/products/1?a=1&b=2')), 'the entry is still a hit')
})

t.test('PURGE from an allowed address purges that URL (normalized like the key) and nothing else', async (t) => {
  const { gw, origin } = await setup(t, { enabled: true })
  const res = await gw.request('/products/1?utm_campaign=x&a=1&b=2', { method: 'PURGE', headers: { host: SHOP } })
  t.equal(res.status, 200)
  t.match(JSON.parse(res.body), { purged: 1, marked: 0, mode: 'hard' })
  t.equal(origin.count(), 2, 'PURGE never reaches the origin')
  const after = await get(gw, SHOP, '/products/1?b=2&a=1')
  t.match(after.header('cache-status'), /fwd=uri-miss/, 'the purged URL misses')
  t.ok(isHit(await get(gw, SHOP, '/products/2')), 'another URL is still a hit')
  const again = await gw.request('/products/9', { method: 'PURGE', headers: { host: SHOP } })
  t.match(JSON.parse(again.body), { purged: 0 }, 'PURGE of a URL not stored purges nothing')
})

t.test('PURGE from an address not in purgeMethod.allow is refused with 403, and purges nothing', async (t) => {
  const { gw } = await setup(t, { enabled: true, allow: ['10.1.2.3', '2001:db8::1'] })
  const res = await gw.request('/products/2', { method: 'PURGE', headers: { host: SHOP } })
  t.equal(res.status, 403)
  t.match(JSON.parse(res.body), { code: 'CG_ERR_ADMIN_FORBIDDEN' })
  t.ok(isHit(await get(gw, SHOP, '/products/2')), 'the entry is still a hit')
})
