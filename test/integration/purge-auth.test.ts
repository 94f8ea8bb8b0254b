/**
 * Refused purges purge nothing: missing, wrong or unconfigured tokens, bad signatures and
 * malformed bodies get the right status, and the entry is still a hit afterwards.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { signPurge, TIMESTAMP_HEADER } from '../../src/http/admin-auth.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'
import { catalog, get, isHit, purge, SHOP, TOKEN } from './purge-helpers.ts'

const SECRET = 'webhook-secret-for-tests'
const redis = await startRedis(t)
let prefixN = 0

async function setup (t: Test, admin: Record<string, unknown> = { token: TOKEN, webhookSecret: SECRET }): Promise<GatewayHandle> {
  const origin = await startOrigin(t, catalog())
  const gw = await withGateway(t, {
    config: { admin, routes: [{ origin: origin.url }], redis: { url: redis.url, keyPrefix: `a${prefixN++}:`, commandTimeout: '2s' } }
  })
  await get(gw, SHOP, '/products/1')
  return gw
}

async function stillHit (t: Test, gw: GatewayHandle): Promise<void> {
  t.ok(isHit(await get(gw, SHOP, '/products/1')), 'nothing was purged: the entry is still a hit')
}

const BODY = { tags: ['product-1'] }

t.test('a request without a token is refused with 401', async (t) => {
  const gw = await setup(t)
  const res = await purge(gw, BODY, {})
  t.equal(res.status, 401)
  t.match(res.body, { code: 'CG_ERR_ADMIN_UNAUTHORIZED' })
  const basic = await purge(gw, BODY, { authorization: 'Basic dXNlcjpwYXNz' })
  t.equal(basic.status, 401, 'another scheme than Bearer')
  await stillHit(t, gw)
})

t.test('a wrong token is refused with 403', async (t) => {
  const gw = await setup(t)
  for (const token of ['wrong', TOKEN.slice(0, -1), TOKEN + 'x']) {
    const res = await purge(gw, BODY, { authorization: `Bearer ${token}` })
    t.equal(res.status, 403)
    t.match(res.body, { code: 'CG_ERR_ADMIN_FORBIDDEN' })
    t.notMatch(JSON.stringify(res.body), TOKEN, 'the token is never echoed')
  }
  await stillHit(t, gw)
})

t.test('a wrong token is refused before the body is read: invalid JSON gets 403, not 400', async (t) => {
  const gw = await setup(t)
  const res = await purge(gw, '{"tags": [', { authorization: 'Bearer wrong' })
  t.equal(res.status, 403)
  await stillHit(t, gw)
})

t.test('with no token configured purges answer 503 saying how to set one; the gateway and health endpoints run', async (t) => {
  const gw = await setup(t, {})
  const res = await purge(gw, BODY, { authorization: `Bearer ${TOKEN}` })
  t.equal(res.status, 503)
  t.match(res.body, { code: 'CG_ERR_ADMIN_DISABLED', message: /CACHEGATE_ADMIN_TOKEN/ })
  t.equal((await request(`${gw.adminUrl}/healthz`)).statusCode, 200, 'healthz')
  t.equal((await request(`${gw.adminUrl}/readyz`)).statusCode, 200, 'readyz')
  await stillHit(t, gw)
})

t.test('a signed webhook is accepted; a bad signature is refused with 403', async (t) => {
  const gw = await setup(t)
  const raw = JSON.stringify(BODY)
  const at = String(Math.floor(gw.clock.now() / 1000))
  const sign = (secret: string, body: string): Record<string, string> => ({ [TIMESTAMP_HEADER]: at, 'x-cachegate-signature': signPurge(secret, at, body) })
  const bad = await purge(gw, raw, sign('another-secret', raw))
  t.equal(bad.status, 403)
  t.match(bad.body, { code: 'CG_ERR_ADMIN_FORBIDDEN', message: /signature/ })
  const tampered = await purge(gw, JSON.stringify({ all: true }), sign(SECRET, raw))
  t.equal(tampered.status, 403, 'a signature of another body')
  await stillHit(t, gw)
  const good = await purge(gw, raw, sign(SECRET, raw))
  t.equal(good.status, 200)
  t.match(good.body, { purged: 1 })
})

t.test('malformed bodies are refused with 400 naming the field, and purge nothing', async (t) => {
  const gw = await setup(t)
  const cases: Array<[unknown, string | RegExp]> = [
    ['{"tags": [', 'The body is not valid JSON'],
    [[], /^body: expected a JSON object/],
    [{}, /^body: expected at least one of urls, prefixes, tags, hosts/],
    [{ tags: ['product-1', 'a', 'b', 'x'.repeat(1025)] }, 'tags[3]: expected a string of at most 1024 bytes'],
    [{ tags: ['product-1', 7] }, 'tags[1]: expected a string of at most 1024 bytes'],
    [{ tags: 'product-1' }, 'tags: expected an array'],
    [{ tags: [''] }, 'tags[0]: expected a non-empty string'],
    [{ tags: Array.from({ length: 257 }, (_, i) => `t${i}`) }, 'tags: expected at most 256 entries, got 257'],
    [{ urls: ['product-1', '/products/1'] }, /^urls\[0\]: expected an absolute http\(s\) URL/],
    [{ urls: ['ftp://shop.example/x'] }, /^urls\[0\]: expected an absolute http\(s\) URL/],
    [{ prefixes: ['/products/'] }, /^prefixes\[0\]: expected an absolute http\(s\) URL with a host/],
    [{ prefixes: ['http:///products/'] }, /^prefixes\[0\]: expected an absolute http\(s\) URL with a host/],
    [{ hosts: ['shop example'] }, /^hosts\[0\]: expected a host name/],
    [{ tags: ['product-1'], mode: 'gentle' }, 'mode: expected "soft", "hard" or "revalidate"'],
    [{ tags: ['product-1'], soft: 'yes' }, 'soft: expected true or false'],
    [{ tags: ['product-1'], soft: false, mode: 'soft' }, 'soft: false conflicts with mode "soft"'],
    [{ all: 'true' }, 'all: expected true or false'],
    [{ tag: ['product-1'] }, /^tag: unknown field/]
  ]
  for (const [body, message] of cases) {
    const res = await purge(gw, typeof body === 'string' ? body : JSON.stringify(body))
    t.equal(res.status, 400, JSON.stringify(body).slice(0, 60))
    t.match(res.body, { code: 'CG_ERR_PURGE_INVALID', message }, String(message))
  }
  await stillHit(t, gw)
})

t.test('256 tags in one call are accepted', async (t) => {
  const gw = await setup(t)
  const tags = Array.from({ length: 255 }, (_, i) => `t${i}`).concat('product-1')
  const res = await purge(gw, { tags, urls: Array.from({ length: 256 }, (_, i) => `https://${SHOP}/x/${i}`) })
  t.equal(res.status, 200, JSON.stringify(res.body))
  t.match(res.body, { purged: 1 })
})
