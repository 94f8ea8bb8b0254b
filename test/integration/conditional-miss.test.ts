// A miss for a URL with no stored response forwards the client's own conditional headers
// (RFC 9111 §4.3.2): a 304 or 412 answers that client only and is never stored; a 200 is
// stored and shared like any miss. On both stores.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `condmiss${++prefixes}:` } } })
}

const ETAG = '"v1"'

/** An origin that honours If-None-Match and If-Match itself, as a real one would; slow enough for a burst to overlap. */
async function validatingOrigin (t: Test, extra: Record<string, string> = {}, delayMs = 0): Promise<Origin> {
  return await startOrigin(t, (req, res, n) => {
    setTimeout(() => {
      const headers = { etag: ETAG, 'cache-control': 'max-age=600', ...extra }
      if (req.headers['if-none-match'] === ETAG) {
        res.writeHead(304, headers)
        res.end()
        return
      }
      if (req.headers['if-match'] !== undefined && req.headers['if-match'] !== ETAG) {
        res.writeHead(412, { 'cache-control': 'max-age=600', 'content-length': 0 })
        res.end()
        return
      }
      const body = `body #${n}`
      res.writeHead(200, { ...headers, 'content-type': 'text/plain', 'content-length': body.length })
      res.end(body)
    }, delayMs)
  })
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('If-None-Match on a miss reaches the origin, its 304 goes to the client and is not stored', async (t) => {
      const origin = await validatingOrigin(t)
      const gw = await withStore(t, kind, origin)
      const res = await gw.get('/doc', { 'if-none-match': ETAG })
      t.equal(res.status, 304)
      t.equal(res.body, '')
      t.equal(origin.requests[0]?.headers['if-none-match'], ETAG, 'the origin saw the client\'s validator')
      await gw.settled()
      const plain = await gw.get('/doc')
      t.equal(plain.status, 200, 'a client without validators gets the full response, never the 304')
      t.equal(plain.body, 'body #2')
      t.equal(origin.count('/doc'), 2)
      await gw.settled()
      t.match((await gw.get('/doc')).header('cache-status'), /^cachegate; hit/, 'the 200 was stored')
    })

    t.test('If-Modified-Since on a miss reaches the origin too', async (t) => {
      const origin = await validatingOrigin(t)
      const gw = await withStore(t, kind, origin)
      await gw.get('/doc', { 'if-modified-since': 'Wed, 01 Oct 2025 10:00:00 GMT' })
      t.equal(origin.requests[0]?.headers['if-modified-since'], 'Wed, 01 Oct 2025 10:00:00 GMT')
    })

    t.test('a 200 to a conditional miss is stored and shared', async (t) => {
      const origin = await validatingOrigin(t)
      const gw = await withStore(t, kind, origin)
      const res = await gw.get('/doc', { 'if-none-match': '"old"' })
      t.equal(res.status, 200)
      t.equal(res.body, 'body #1')
      await gw.settled()
      const next = await gw.get('/doc')
      t.equal(next.body, 'body #1')
      t.match(next.header('cache-status'), /^cachegate; hit/)
      t.equal(origin.count('/doc'), 1)
    })

    t.test('a 412 to If-Match on a miss is relayed and not stored, although it says max-age=600', async (t) => {
      const origin = await validatingOrigin(t)
      const gw = await withStore(t, kind, origin)
      const res = await gw.get('/doc', { 'if-match': '"other"' })
      t.equal(res.status, 412)
      await gw.settled()
      const plain = await gw.get('/doc')
      t.equal(plain.status, 200)
      t.equal(plain.body, 'body #2')
    })

    t.test('a burst of misses with the same validator is one origin request', async (t) => {
      const origin = await validatingOrigin(t, {}, 150)
      const gw = await withStore(t, kind, origin)
      const replies = await Promise.all(Array.from({ length: 10 }, async () => await gw.get('/doc', { 'if-none-match': ETAG })))
      t.ok(replies.every((r) => r.status === 304), 'every client got the 304')
      t.equal(origin.count('/doc'), 1)
    })

    t.test('a stored response is revalidated with its own validators, not the client\'s', async (t) => {
      const origin = await validatingOrigin(t, { 'cache-control': 'max-age=1' })
      const gw = await withStore(t, kind, origin)
      await gw.get('/doc')
      await gw.settled()
      gw.clock.advance(5000)
      await gw.get('/doc', { 'if-none-match': '"client-only"' })
      t.equal(origin.requests[1]?.headers['if-none-match'], ETAG)
    })

    t.test('a fetch for the cache tells the origin it honours Surrogate-Control', async (t) => {
      const origin = await validatingOrigin(t)
      const gw = await withStore(t, kind, origin)
      await gw.get('/doc', { 'surrogate-capability': 'cachegate="ESI/1.0", evil="x"' })
      t.equal(origin.requests[0]?.headers['surrogate-capability'], 'cachegate="Surrogate/1.0"', 'the client\'s value is replaced')
    })
  })
}

async function withStore (t: Test, kind: StoreKind, origin: Origin): Promise<GatewayHandle> {
  return await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
}

behaviours('memory')
behaviours('redis')
