/**
 * An origin URL with a base path (http://host:port/base) passes the config check, so start
 * and reload must accept it too: the base path is prefixed to every forwarded path (cached
 * fetches and pass-through alike). On both stores.
 */
import t from 'tap'
import type { Test } from 'tap'
import { parseConfig } from '../../src/config/load.ts'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `base${++prefixes}:` } } })
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('a route whose origin has a base path starts, and forwards GETs and POSTs under that path', async (t) => {
      const origin = await startOrigin(t, json({ ok: true }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ path: '/', origin: `${origin.url}/base/` }] } })
      const get = await gw.get('/items/1?x=1')
      t.equal(get.status, 200)
      const post = await gw.request('/items', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      t.equal(post.status, 200)
      t.same(origin.requests.map((r) => `${r.method} ${r.url}`), ['GET /base/items/1?x=1', 'POST /base/items'])
    })

    t.test('a reload that adds a route with a base path applies it whole: its GETs reach the origin under the path', async (t) => {
      const first = await startOrigin(t, json({ from: 'first' }))
      const second = await startOrigin(t, json({ from: 'second' }))
      const gw = await gateway(t, kind, { config: { routes: [{ path: '/', origin: first.url }] } })
      const current = gw.gateway.config()
      const next = parseConfig(JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        ...(current.redis !== undefined ? { redis: { url: redis.url, keyPrefix: current.redis.keyPrefix } } : {}),
        routes: [{ name: 'v2', path: '/v2/', origin: `${second.url}/api` }, { path: '/', origin: first.url }]
      }), 'reload.yaml', {})
      gw.gateway.reload(next)
      const res = await gw.get('/v2/thing')
      t.equal(res.status, 200)
      t.same(JSON.parse(res.body), { from: 'second' })
      t.same(second.requests.map((r) => r.url), ['/api/v2/thing'])
    })
  })
}

behaviours('memory')
behaviours('redis')
