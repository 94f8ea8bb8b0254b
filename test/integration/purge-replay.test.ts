/**
 * Signed purge webhooks cannot be replayed: the signature covers `timestamp.body`, a
 * timestamp outside admin.webhookTolerance is refused, and a signature already used within
 * the window is refused, on every instance sharing the Redis. The bearer token still works.
 */
import t, { type Test } from 'tap'
import { signPurge, TIMESTAMP_HEADER } from '../../src/http/admin-auth.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'
import { catalog, get, purge, SHOP, TOKEN } from './purge-helpers.ts'

const SECRET = 'webhook-secret-for-tests'
const redis = await startRedis(t)
let prefixN = 0
const BODY = JSON.stringify({ tags: ['product-1'] })

async function setup (t: Test, kind: 'memory' | 'redis', prefix = `replay${prefixN++}:`): Promise<GatewayHandle> {
  const origin = await startOrigin(t, catalog())
  const gw = await withGateway(t, {
    config: {
      admin: { token: TOKEN, webhookSecret: SECRET },
      routes: [{ origin: origin.url }],
      ...(kind === 'redis' ? { redis: { url: redis.url, keyPrefix: prefix } } : {})
    }
  })
  await get(gw, SHOP, '/products/1')
  return gw
}

function signed (gw: GatewayHandle, body = BODY, at = Math.floor(gw.clock.now() / 1000)): Record<string, string> {
  return { [TIMESTAMP_HEADER]: String(at), 'x-cachegate-signature': signPurge(SECRET, at, body) }
}

for (const kind of ['memory', 'redis'] as const) {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('a signed purge is accepted once; the same request again is refused as a replay', async (t) => {
      const gw = await setup(t, kind)
      const headers = signed(gw)
      const first = await purge(gw, BODY, headers)
      t.equal(first.status, 200, JSON.stringify(first.body))
      const again = await purge(gw, BODY, headers)
      t.equal(again.status, 403)
      t.match(again.body, { code: 'CG_ERR_ADMIN_FORBIDDEN', message: /already been used/ })
    })

    t.test('a signature older or newer than the tolerance is refused; inside it is accepted', async (t) => {
      const gw = await setup(t, kind)
      const now = Math.floor(gw.clock.now() / 1000)
      const old = await purge(gw, BODY, signed(gw, BODY, now - 301))
      t.equal(old.status, 403)
      t.match(old.body, { message: /timestamp/ })
      const future = await purge(gw, BODY, signed(gw, BODY, now + 301))
      t.equal(future.status, 403)
      const recent = await purge(gw, BODY, signed(gw, BODY, now - 299))
      t.equal(recent.status, 200)
    })

    t.test('a signature of the body alone (no timestamp) is refused, saying what to sign', async (t) => {
      const gw = await setup(t, kind)
      const at = Math.floor(gw.clock.now() / 1000)
      const noTimestamp = await purge(gw, BODY, { 'x-cachegate-signature': signPurge(SECRET, at, BODY) })
      t.equal(noTimestamp.status, 403)
      t.match(noTimestamp.body, { message: /X-Cachegate-Timestamp/ })
      const moved = await purge(gw, BODY, { [TIMESTAMP_HEADER]: String(at + 1), 'x-cachegate-signature': signPurge(SECRET, at, BODY) })
      t.equal(moved.status, 403, 'the timestamp is part of what is signed')
    })

    t.test('the bearer token path still purges, as often as asked', async (t) => {
      const gw = await setup(t, kind)
      for (let i = 0; i < 2; i++) t.equal((await purge(gw, BODY, { authorization: `Bearer ${TOKEN}` })).status, 200)
    })
  })
}

t.test('on Redis a signature used on one instance is refused on another sharing the Redis', async (t) => {
  const a = await setup(t, 'redis', 'shared-replay:')
  const b = await setup(t, 'redis', 'shared-replay:')
  const headers = signed(a)
  t.equal((await purge(a, BODY, headers)).status, 200)
  const replayed = await purge(b, BODY, headers)
  t.equal(replayed.status, 403)
  t.match(replayed.body, { message: /already been used/ })
})
