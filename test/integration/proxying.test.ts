// Proxying: the read-through path, HEAD from a stored GET, errors in the catalogue's shape,
// what the origin receives, pass-through methods and disabled routes. Every behaviour runs on
// the memory store and on a real redis-server.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { freePort, startRedis } from '../helpers/redis.ts'
import { rawGet } from '../helpers/raw.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `proxying${++prefixes}:` } } })
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('a cacheable response is a MISS first and a HIT after, with one origin request', async (t) => {
      const origin = await startOrigin(t, json({ id: 1, name: 'Teapot' }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await gw.get('/products/1')
      t.equal(first.status, 200)
      t.same(JSON.parse(first.body), { id: 1, name: 'Teapot' })
      t.equal(first.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; stored')
      await gw.settled()
      gw.clock.advance(5000)
      const second = await gw.get('/products/1')
      t.equal(second.status, 200)
      t.equal(second.body, first.body)
      t.equal(second.header('cache-status'), 'cachegate; hit; ttl=55')
      t.equal(second.header('age'), '5')
      t.equal(second.header('content-type'), 'application/json')
      t.equal(origin.count('/products/1'), 1)
    })

    t.test('a HEAD is answered from a stored GET without a body and with the same Content-Length', async (t) => {
      const origin = await startOrigin(t, json({ id: 2, name: 'Kettle' }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const get = await gw.get('/products/2')
      await gw.settled()
      const head = await gw.request('/products/2', { method: 'HEAD' })
      t.equal(head.status, 200)
      t.equal(head.body, '')
      t.equal(head.header('content-length'), String(Buffer.byteLength(get.body)))
      t.equal(head.header('content-length'), get.header('content-length'))
      t.match(head.header('cache-status'), /^cachegate; hit; ttl=\d+$/)
      t.equal(origin.count(), 1, 'the origin saw only the GET')
      t.equal(origin.requests[0]?.method, 'GET')
    })

    t.test('a HEAD on a cold key is answered without a body and stores the GET for later requests', async (t) => {
      const origin = await startOrigin(t, json({ id: 3, name: 'Mug' }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const head = await gw.request('/products/3', { method: 'HEAD' })
      t.equal(head.status, 200)
      t.equal(head.body, '')
      t.equal(head.header('content-length'), String(Buffer.byteLength('{"id":3,"name":"Mug"}')))
      await gw.settled()
      const get = await gw.get('/products/3')
      t.same(JSON.parse(get.body), { id: 3, name: 'Mug' })
      t.match(get.header('cache-status'), /^cachegate; hit/)
      t.same(origin.requests.map((r) => r.method), ['GET'], 'the origin was asked for a GET once')
    })

    t.test('a request no route serves is a 404 CG_ERR_NO_ROUTE in JSON with Cache-Status', async (t) => {
      const origin = await startOrigin(t, json({ ok: true }))
      const gw = await gateway(t, kind, { config: { routes: [{ path: '/api', origin: origin.url }, { host: 'shop.example', origin: origin.url }] } })
      for (const path of ['/other', '/apix']) {
        const res = await gw.get(path)
        t.equal(res.status, 404, path)
        t.match(res.header('content-type'), /^application\/json/)
        const body = JSON.parse(res.body) as Record<string, unknown>
        t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
        t.match(body, { statusCode: 404, code: 'CG_ERR_NO_ROUTE', error: 'Not Found', message: String })
        t.match(res.header('cache-status'), /^cachegate; fwd=bypass; detail=no-route$/)
      }
      t.equal(origin.count(), 0)
    })

    t.test('an origin that refuses connections is a 502 CG_ERR_ORIGIN_UNREACHABLE', async (t) => {
      const port = await freePort()
      const gw = await gateway(t, kind, { config: { routes: [{ origin: `http://127.0.0.1:${port}` }] } })
      const res = await gw.get('/products/1')
      t.equal(res.status, 502)
      t.match(JSON.parse(res.body), { statusCode: 502, code: 'CG_ERR_ORIGIN_UNREACHABLE', error: 'Bad Gateway', message: String })
      t.match(res.header('cache-status'), /^cachegate; fwd=uri-miss; detail=origin-unreachable$/)
      t.equal(res.header('cache-control'), 'no-store')
      const post = await gw.request('/products/1', { method: 'POST', body: 'x' })
      t.equal(post.status, 502, 'a pass-through request maps the same way')
      t.match(JSON.parse(post.body), { code: 'CG_ERR_ORIGIN_UNREACHABLE' })
    })

    t.test('an origin that never answers is a 504 CG_ERR_ORIGIN_TIMEOUT after the headers timeout', async (t) => {
      const origin = await startOrigin(t, () => { /* never answers */ })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, timeouts: { headers: '300ms' } }] } })
      const res = await gw.get('/slow')
      t.equal(res.status, 504)
      t.match(JSON.parse(res.body), { statusCode: 504, code: 'CG_ERR_ORIGIN_TIMEOUT', error: 'Gateway Timeout', message: String })
      t.match(res.header('cache-status'), /^cachegate; fwd=uri-miss; detail=origin-timeout$/)
      const post = await gw.request('/slow', { method: 'POST', body: 'x' })
      t.equal(post.status, 504, 'a pass-through request maps the same way')
      t.match(JSON.parse(post.body), { code: 'CG_ERR_ORIGIN_TIMEOUT' })
    })

    t.test('hop-by-hop request fields and the fields Connection names are not forwarded', async (t) => {
      const origin = await startOrigin(t, json({ ok: true }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const res = await rawGet(gw.url, '/hop', { connection: 'x-foo', 'x-foo': 'secret', 'keep-alive': 'timeout=5', te: 'trailers', 'x-kept': 'yes' })
      t.equal(res.status, 200)
      const seen = origin.requests[0]?.headers ?? {}
      t.equal(seen['x-foo'], undefined)
      t.equal(seen['keep-alive'], undefined)
      t.equal(seen.te, undefined)
      t.not(seen.connection, 'x-foo')
      t.equal(seen['x-kept'], 'yes', 'end-to-end fields are forwarded')
    })

    t.test('the origin receives X-Forwarded-For, -Proto, -Host and Via', async (t) => {
      const origin = await startOrigin(t, json({ ok: true }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const host = new URL(gw.url).host
      await gw.get('/fwd')
      await gw.get('/fwd-chain', { 'x-forwarded-for': '203.0.113.7', via: '1.1 edge' })
      await gw.request('/fwd-post', { method: 'POST', body: 'x' })
      const [plain, chained, post] = origin.requests
      t.match(plain?.headers, { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': host, via: '1.1 cachegate' })
      // No trustedProxies: a client's own chain is replaced by its address (forwarding.test.ts has the rest).
      t.match(chained?.headers, { 'x-forwarded-for': '127.0.0.1', via: '1.1 edge, 1.1 cachegate' })
      t.match(post?.headers, { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': host, via: '1.1 cachegate' })
    })

    t.test('POST, PUT and DELETE are forwarded with their bodies and answered by the origin', async (t) => {
      const bodies: string[] = []
      const origin = await startOrigin(t, async (req, res) => {
        const chunks: Buffer[] = []
        for await (const c of req) chunks.push(c as Buffer)
        const body = Buffer.concat(chunks).toString()
        bodies.push(body)
        const text = JSON.stringify({ method: req.method, body })
        res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.end(text)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      for (const method of ['POST', 'PUT', 'DELETE'] as const) {
        const res = await gw.request('/items/1', { method, headers: { 'content-type': 'application/json' }, body: `{"m":"${method}"}` })
        t.equal(res.status, method === 'POST' ? 201 : 200, method)
        t.same(JSON.parse(res.body), { method, body: `{"m":"${method}"}` })
        t.match(res.header('cache-status'), new RegExp(`^cachegate; fwd=method; fwd-status=${res.status}$`))
      }
      t.same(origin.requests.map((r) => r.method), ['POST', 'PUT', 'DELETE'])
      t.same(bodies, ['{"m":"POST"}', '{"m":"PUT"}', '{"m":"DELETE"}'])
    })

    t.test('a route with caching disabled passes GETs through uncached', async (t) => {
      const origin = await startOrigin(t, json({ id: 1 }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, enabled: false }] } })
      const first = await gw.get('/products/1')
      await gw.settled()
      const second = await gw.get('/products/1')
      for (const res of [first, second]) {
        t.equal(res.status, 200)
        t.same(JSON.parse(res.body), { id: 1 })
        t.equal(res.header('cache-status'), 'cachegate; fwd=bypass; fwd-status=200; detail=route-disabled')
        t.equal(res.header('age'), undefined)
      }
      t.equal(origin.count('/products/1'), 2)
    })
  })
}

behaviours('memory')
behaviours('redis')
