// Freshness and age (RFC 9111 §4.2) on the ManualClock, and revalidation of stale entries
// (§4.3): what the origin receives and what a 304 changes.
import t from 'tap'
import type { Test } from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `freshness${++prefixes}:` } } })
}

const httpDate = (ms: number): string => new Date(ms).toUTCString()

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('s-maxage wins over max-age', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=10, s-maxage=100' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/a')
      await gw.settled()
      gw.clock.advance(50_000)
      const hit = await gw.get('/a')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=50')
      t.equal(hit.header('age'), '50')
      gw.clock.advance(51_000)
      const after = await gw.get('/a')
      t.notMatch(after.header('cache-status'), /hit/)
      t.equal(origin.count('/a'), 2)
    })

    t.test('Expires minus Date gives the lifetime when Cache-Control has none', async (t) => {
      const clock = new ManualClock()
      const origin = await startOrigin(t, (_req, res) => {
        const body = '{"v":1}'
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, date: httpDate(clock.now()), expires: httpDate(clock.now() + 120_000) })
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] }, clock })
      const first = await gw.get('/e')
      t.equal(first.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; stored')
      await gw.settled()
      clock.advance(100_000)
      const hit = await gw.get('/e')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=20')
      t.equal(hit.header('expires'), first.header('expires'))
      clock.advance(30_000)
      const after = await gw.get('/e')
      t.notMatch(after.header('cache-status'), /hit/)
      t.equal(origin.count('/e'), 2)
    })

    t.test('the route defaultTtl applies only when the origin gives no explicit freshness', async (t) => {
      const origin = await startOrigin(t, (req, res) => {
        const headers: Record<string, string> = req.url === '/explicit' ? { 'cache-control': 'max-age=5' } : {}
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2, ...headers })
        res.end('ok')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, defaultTtl: '30s' }] } })
      await gw.get('/implicit')
      await gw.get('/explicit')
      await gw.settled()
      gw.clock.advance(10_000)
      t.equal((await gw.get('/implicit')).header('cache-status'), 'cachegate; hit; ttl=20', 'no freshness: the default applies')
      t.notMatch((await gw.get('/explicit')).header('cache-status'), /hit/, 'max-age=5 is kept, not raised to the default')
      t.equal(origin.count('/explicit'), 2)
      gw.clock.advance(21_000)
      t.notMatch((await gw.get('/implicit')).header('cache-status'), /hit/)
      t.equal(origin.count('/implicit'), 2)
    })

    t.test('the route maxTtl caps the origin\'s lifetime', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=3600' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, maxTtl: '10s' }] } })
      await gw.get('/capped')
      await gw.settled()
      gw.clock.advance(4000)
      const hit = await gw.get('/capped')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=6')
      t.equal(hit.header('cache-control'), 'max-age=3600', 'the cap is the gateway\'s own; downstream sees the origin\'s field')
      gw.clock.advance(7000)
      t.notMatch((await gw.get('/capped')).header('cache-status'), /hit/)
      t.equal(origin.count('/capped'), 2)
    })

    t.test('without explicit freshness the lifetime is 10% of Date minus Last-Modified', async (t) => {
      const clock = new ManualClock()
      const origin = await startOrigin(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2, date: httpDate(clock.now()), 'last-modified': httpDate(clock.now() - 1000_000) })
        res.end('ok')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] }, clock })
      await gw.get('/h')
      await gw.settled()
      clock.advance(40_000)
      t.equal((await gw.get('/h')).header('cache-status'), 'cachegate; hit; ttl=60')
      clock.advance(61_000)
      t.notMatch((await gw.get('/h')).header('cache-status'), /hit/)
      t.equal(origin.count('/h'), 2)
    })

    t.test('Age counts the origin\'s Age, the Date difference and the time stored (§4.2.3)', async (t) => {
      const clock = new ManualClock()
      const origin = await startOrigin(t, (req, res) => {
        const body = 'aged'
        const headers: Record<string, string> = req.url === '/upstream-age'
          ? { age: '30', date: httpDate(clock.now()) }
          : { date: httpDate(clock.now() - 10_000) }
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': 'max-age=60', ...headers })
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] }, clock })
      const miss = await gw.get('/upstream-age')
      t.equal(miss.header('age'), '30', 'a miss passes the origin\'s Age on')
      await gw.get('/old-date')
      await gw.settled()
      const immediately = await gw.get('/old-date')
      t.equal(immediately.header('age'), '10', 'apparent age: the response was generated 10 s ago')
      t.equal(immediately.header('cache-status'), 'cachegate; hit; ttl=50')
      clock.advance(10_000)
      const hit = await gw.get('/upstream-age')
      t.equal(hit.header('age'), '40', '30 s upstream plus 10 s here')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=20')
      clock.advance(21_000)
      t.notMatch((await gw.get('/upstream-age')).header('cache-status'), /hit/, 'stale once Age passes max-age')
      t.equal(origin.count('/upstream-age'), 2)
    })

    // The entry must outlive its freshness to be revalidated: a stale-if-error window keeps it.
    t.test('a stale entry is revalidated with If-None-Match and a 304 refreshes its headers and keeps its body', async (t) => {
      const origin = await startOrigin(t, (req, res) => {
        if (req.headers['if-none-match'] === '"v1"') {
          res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60', 'x-version': '2' })
          res.end()
          return
        }
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 9, etag: '"v1"', 'cache-control': 'max-age=60', 'x-version': '1' })
        res.end('the-body!')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, staleIfError: '10m' }] } })
      const first = await gw.get('/r')
      t.equal(first.header('x-version'), '1')
      await gw.settled()
      gw.clock.advance(61_000)
      const revalidated = await gw.get('/r')
      t.equal(revalidated.status, 200)
      t.equal(revalidated.body, 'the-body!')
      t.equal(revalidated.header('x-version'), '2', 'the 304\'s fields replace the stored ones')
      t.equal(revalidated.header('content-length'), '9')
      t.equal(revalidated.header('cache-status'), 'cachegate; fwd=stale; fwd-status=304; stored')
      t.equal(origin.requests[1]?.headers['if-none-match'], '"v1"')
      await gw.settled()
      gw.clock.advance(30_000)
      const hit = await gw.get('/r')
      t.equal(hit.header('cache-status'), 'cachegate; hit; ttl=30', 'the 304 made the entry fresh again')
      t.equal(hit.header('x-version'), '2')
      t.equal(hit.body, 'the-body!')
      t.equal(origin.count('/r'), 2)
    })

    t.test('a stale entry with only Last-Modified is revalidated with If-Modified-Since', async (t) => {
      const lastModified = 'Wed, 01 Oct 2025 10:00:00 GMT'
      const origin = await startOrigin(t, (req, res) => {
        if (req.headers['if-modified-since'] === lastModified) {
          res.writeHead(304, { 'last-modified': lastModified, 'cache-control': 'max-age=60', 'x-version': '2' })
          res.end()
          return
        }
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4, 'last-modified': lastModified, 'cache-control': 'max-age=60', 'x-version': '1' })
        res.end('body')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, staleIfError: '10m' }] } })
      await gw.get('/lm')
      await gw.settled()
      gw.clock.advance(61_000)
      const revalidated = await gw.get('/lm')
      t.equal(revalidated.body, 'body')
      t.equal(revalidated.header('x-version'), '2')
      t.match(revalidated.header('cache-status'), /fwd-status=304/)
      t.equal(origin.requests[1]?.headers['if-modified-since'], lastModified)
      t.equal(origin.requests[1]?.headers['if-none-match'], undefined)
    })

    t.test('a 200 answer to a revalidation replaces the stored entry', async (t) => {
      const origin = await startOrigin(t, (_req, res, n) => {
        const body = `version-${n}`
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, etag: `"v${n}"`, 'cache-control': 'max-age=60' })
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, staleIfError: '10m' }] } })
      await gw.get('/changed')
      await gw.settled()
      gw.clock.advance(61_000)
      const fresh = await gw.get('/changed')
      t.equal(fresh.body, 'version-2')
      t.equal(origin.requests[1]?.headers['if-none-match'], '"v1"')
      t.equal(fresh.header('cache-status'), 'cachegate; fwd=stale; fwd-status=200; stored; detail=stale')
      await gw.settled()
      const hit = await gw.get('/changed')
      t.equal(hit.body, 'version-2')
      t.match(hit.header('cache-status'), /^cachegate; hit/)
      t.equal(origin.count('/changed'), 2)
    })
  })
}

behaviours('memory')
behaviours('redis')
