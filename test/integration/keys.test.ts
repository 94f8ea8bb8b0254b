// Cache keys: equivalent URLs share one entry and are forwarded in one normalized form,
// different resources never share, and route key headers and cookies separate entries.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin } from '../helpers/origin.ts'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'
import { rawGet } from '../helpers/raw.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `keys${++prefixes}:` } } })
}

/** Answers `<url> #<n>` (cacheable), so a body shows which origin request produced it. */
function echo (req: IncomingMessage, res: ServerResponse, n: number): void {
  const body = `${req.url ?? ''} #${n}`
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=600' })
  res.end(body)
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('query parameters in another order share one entry', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await gw.get('/search?b=2&a=1')
      await gw.settled()
      const second = await gw.get('/search?a=1&b=2')
      t.match(second.header('cache-status'), /^cachegate; hit/)
      t.equal(second.body, first.body)
      t.same(origin.requests.map((r) => r.url), ['/search?a=1&b=2'], 'the origin gets the normalized order')
    })

    t.test('ignored query parameters share the entry and are not forwarded to the origin', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, key: { ignoreQuery: ['utm_*'] } }] } })
      const first = await gw.get('/p?id=1&utm_source=mail&utm_campaign=x')
      t.equal(first.body, '/p?id=1 #1')
      await gw.settled()
      const second = await gw.get('/p?id=1')
      t.match(second.header('cache-status'), /^cachegate; hit/)
      const third = await gw.get('/p?utm_medium=ad&id=1')
      t.match(third.header('cache-status'), /^cachegate; hit/)
      t.same(origin.requests.map((r) => r.url), ['/p?id=1'])
    })

    t.test('dot segments are resolved: /a/../b shares /b and the origin receives /b', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const dotted = await rawGet(gw.url, '/a/../b')
      t.equal(dotted.status, 200)
      t.equal(dotted.body, '/b #1')
      await gw.settled()
      const plain = await gw.get('/b')
      t.match(plain.header('cache-status'), /^cachegate; hit/)
      t.same(origin.requests.map((r) => r.url), ['/b'])
    })

    t.test('paths differing in case are different entries', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/B')
      await gw.settled()
      const lower = await gw.get('/b')
      t.notMatch(lower.header('cache-status'), /hit/)
      t.equal(lower.body, '/b #2')
      t.same(origin.requests.map((r) => r.url), ['/B', '/b'])
    })

    t.test('an escaped unreserved character shares the entry of the character itself', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const escaped = await rawGet(gw.url, '/%7Euser')
      t.equal(escaped.body, '/~user #1')
      await gw.settled()
      const plain = await rawGet(gw.url, '/~user')
      t.match(plain.headers['cache-status'], /^cachegate; hit/)
      t.equal(origin.count(), 1)
    })

    t.test('invalid percent-encoding is a 400 CG_ERR_BAD_REQUEST', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      for (const path of ['/bad%zz', '/bad%4', '/q?x=%g1', '/q?x=%4', '/q?%zz=1']) {
        const res = await rawGet(gw.url, path)
        t.equal(res.status, 400, path)
        t.match(JSON.parse(res.body), { statusCode: 400, code: 'CG_ERR_BAD_REQUEST', error: 'Bad Request', message: String })
        t.match(res.headers['cache-status'], /^cachegate; fwd=bypass; detail=bad-request$/)
      }
      t.equal(origin.count(), 0)
    })

    t.test('route key headers separate entries', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, key: { headers: ['x-tenant'] } }] } })
      const a = await gw.get('/t', { 'x-tenant': 'acme' })
      await gw.settled()
      const b = await gw.get('/t', { 'x-tenant': 'globex' })
      await gw.settled()
      t.equal(a.body, '/t #1')
      t.equal(b.body, '/t #2', 'another tenant is another entry')
      const again = await gw.get('/t', { 'x-tenant': 'acme' })
      t.match(again.header('cache-status'), /^cachegate; hit/)
      t.equal(again.body, '/t #1')
      const none = await gw.get('/t')
      t.equal(none.body, '/t #3', 'no tenant is yet another entry')
      t.equal(origin.requests[1]?.headers['x-tenant'], 'globex', 'the key header is forwarded')
    })

    t.test('route key cookies separate entries and other cookies do not', async (t) => {
      const origin = await startOrigin(t, echo)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, key: { cookies: ['currency'] } }] } })
      const eur = await gw.get('/price', { cookie: 'currency=EUR; session=1' })
      await gw.settled()
      const usd = await gw.get('/price', { cookie: 'currency=USD; session=1' })
      await gw.settled()
      t.equal(eur.body, '/price #1')
      t.equal(usd.body, '/price #2')
      const eurAgain = await gw.get('/price', { cookie: 'session=2; currency=EUR' })
      t.match(eurAgain.header('cache-status'), /^cachegate; hit/)
      t.equal(eurAgain.body, '/price #1')
      t.equal(origin.count(), 2)
    })
  })
}

behaviours('memory')
behaviours('redis')
