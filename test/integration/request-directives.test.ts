// Request Cache-Control (RFC 9111 §5.2.1), Pragma (§5.4), and the response directives that
// forbid reuse without validation (§5.2.2.2 must-revalidate, §5.2.2.4 no-cache).
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `directives${++prefixes}:` } } })
}

/** An origin resource with an ETag: a 304 to a matching If-None-Match, else the body. */
function etagged (cacheControl: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.headers['if-none-match'] === '"e1"') {
      res.writeHead(304, { etag: '"e1"', 'cache-control': cacheControl })
      res.end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5, etag: '"e1"', 'cache-control': cacheControl })
    res.end('hello')
  }
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('request no-cache revalidates a fresh entry with the origin', async (t) => {
      const origin = await startOrigin(t, etagged('max-age=60'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/nc')
      await gw.settled()
      const res = await gw.get('/nc', { 'cache-control': 'no-cache' })
      t.equal(res.status, 200)
      t.equal(res.body, 'hello')
      t.match(res.header('cache-status'), /^cachegate; fwd=request; fwd-status=304/)
      t.equal(origin.count('/nc'), 2)
      t.equal(origin.requests[1]?.headers['if-none-match'], '"e1"')
    })

    t.test('request no-store keeps the response out of the cache', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await gw.get('/ns', { 'cache-control': 'no-store' })
      t.equal(first.status, 200)
      t.equal(first.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; detail=request-no-store')
      await gw.settled()
      const second = await gw.get('/ns')
      t.notMatch(second.header('cache-status'), /hit/)
      t.equal(origin.count('/ns'), 2)
    })

    t.test('request max-age=0 sends the request to the origin even when the entry is fresh', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/ma')
      await gw.settled()
      gw.clock.advance(1000)
      const res = await gw.get('/ma', { 'cache-control': 'max-age=0' })
      t.equal(res.status, 200)
      t.match(res.header('cache-status'), /^cachegate; fwd=request; fwd-status=200; stored; detail=request-max-age$/)
      t.equal(origin.count('/ma'), 2)
      await gw.settled()
      gw.clock.advance(1000)
      t.match((await gw.get('/ma', { 'cache-control': 'max-age=5' })).header('cache-status'), /^cachegate; hit/, 'younger than 5 s: served')
      t.equal(origin.count('/ma'), 2)
    })

    t.test('request min-fresh refuses an entry that will not stay fresh long enough', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/mf')
      await gw.settled()
      gw.clock.advance(30_000)
      t.equal((await gw.get('/mf', { 'cache-control': 'min-fresh=20' })).header('cache-status'), 'cachegate; hit; ttl=30')
      t.equal(origin.count('/mf'), 1)
      const refused = await gw.get('/mf', { 'cache-control': 'min-fresh=40' })
      t.match(refused.header('cache-status'), /^cachegate; fwd=request; fwd-status=200; .*detail=request-min-fresh$/)
      t.equal(origin.count('/mf'), 2)
    })

    // A stale-if-error window keeps the entry in the store after it goes stale.
    t.test('request max-stale accepts a stale entry within its bound', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, staleIfError: '10m' }] } })
      await gw.get('/ms')
      await gw.settled()
      gw.clock.advance(90_000)
      const stale = await gw.get('/ms', { 'cache-control': 'max-stale=60' })
      t.equal(stale.status, 200)
      t.equal(stale.header('cache-status'), 'cachegate; hit; fwd=stale; ttl=-30; detail=max-stale')
      t.equal(stale.header('age'), '90')
      t.equal(origin.count('/ms'), 1)
      const tooStale = await gw.get('/ms', { 'cache-control': 'max-stale=10' })
      t.notMatch(tooStale.header('cache-status'), /hit/)
      t.equal(origin.count('/ms'), 2)
    })

    t.test('only-if-cached is a 504 CG_ERR_ONLY_IF_CACHED on a miss and a hit once stored', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const miss = await gw.get('/oic', { 'cache-control': 'only-if-cached' })
      t.equal(miss.status, 504)
      t.match(JSON.parse(miss.body), { statusCode: 504, code: 'CG_ERR_ONLY_IF_CACHED', error: 'Gateway Timeout', message: String })
      t.match(miss.header('cache-status'), /^cachegate; fwd=miss; detail=only-if-cached$/)
      t.equal(origin.count('/oic'), 0, 'the origin is never asked')
      await gw.get('/oic')
      await gw.settled()
      const hit = await gw.get('/oic', { 'cache-control': 'only-if-cached' })
      t.equal(hit.status, 200)
      t.same(JSON.parse(hit.body), { v: 1 })
      t.match(hit.header('cache-status'), /^cachegate; hit/)
      t.equal(origin.count('/oic'), 1)
    })

    t.test('Pragma: no-cache without Cache-Control revalidates; with Cache-Control it is ignored', async (t) => {
      const origin = await startOrigin(t, etagged('max-age=60'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/pragma')
      await gw.settled()
      const withCc = await gw.get('/pragma', { pragma: 'no-cache', 'cache-control': 'max-age=100' })
      t.match(withCc.header('cache-status'), /^cachegate; hit/)
      t.equal(origin.count('/pragma'), 1)
      const pragmaOnly = await gw.get('/pragma', { pragma: 'no-cache' })
      t.equal(pragmaOnly.body, 'hello')
      t.match(pragmaOnly.header('cache-status'), /^cachegate; fwd=request; fwd-status=304/)
      t.equal(origin.count('/pragma'), 2)
      t.equal(origin.requests[1]?.headers['if-none-match'], '"e1"')
    })

    t.test('a response with no-cache is stored but validated with the origin before every reuse', async (t) => {
      const origin = await startOrigin(t, etagged('no-cache, max-age=60'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await gw.get('/rnc')
      t.match(first.header('cache-status'), /stored/)
      await gw.settled()
      for (let i = 2; i <= 3; i++) {
        const res = await gw.get('/rnc')
        t.equal(res.body, 'hello')
        t.match(res.header('cache-status'), /fwd-status=304/)
        t.notMatch(res.header('cache-status'), /hit/)
        t.equal(origin.count('/rnc'), i)
        t.equal(origin.requests[i - 1]?.headers['if-none-match'], '"e1"')
      }
    })

    // A stale-if-error window keeps the entry in the store after it goes stale.
    t.test('a response with must-revalidate is never served stale, not even to max-stale', async (t) => {
      const origin = await startOrigin(t, etagged('max-age=10, must-revalidate'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, staleIfError: '10m' }] } })
      await gw.get('/mr')
      await gw.settled()
      gw.clock.advance(5000)
      t.match((await gw.get('/mr', { 'cache-control': 'max-stale' })).header('cache-status'), /^cachegate; hit/, 'fresh: served')
      gw.clock.advance(10_000)
      const res = await gw.get('/mr', { 'cache-control': 'max-stale' })
      t.equal(res.body, 'hello')
      t.match(res.header('cache-status'), /^cachegate; fwd=stale; fwd-status=304/)
      t.equal(origin.count('/mr'), 2)
      t.equal(origin.requests[1]?.headers['if-none-match'], '"e1"')
    })

    t.test('a must-revalidate entry whose origin fails is an error, not a stale answer', async (t) => {
      const origin = await startOrigin(t, (_req, res, n) => {
        if (n > 1) {
          res.writeHead(503, { 'content-type': 'text/plain', 'content-length': 4 })
          res.end('down')
          return
        }
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5, 'cache-control': 'max-age=10, must-revalidate' })
        res.end('hello')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, staleIfError: '10m' }] } })
      await gw.get('/mr-down')
      await gw.settled()
      gw.clock.advance(15_000)
      const res = await gw.get('/mr-down')
      t.equal(res.status, 503)
      t.equal(res.body, 'down')
      t.equal(origin.count('/mr-down'), 2)
    })
  })
}

behaviours('memory')
behaviours('redis')
