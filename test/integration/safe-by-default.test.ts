/**
 * Safe by default (issue 9): a response reaches another client only with the origin's explicit
 * permission; one normalized target decides route, key and forwarded path; one client's
 * request directives change that client's answer only. Each case ran red before its fix.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startOrigin, type OriginHandler } from '../helpers/origin.ts'
import { rawGet } from '../helpers/raw.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `safe${++prefixes}:` } } })
}

/** The shipped route's stale windows. */
const WINDOWS = { staleWhileRevalidate: '30s', staleIfError: '5m', maxTtl: '1d' }

/** A personal page: names whoever the Cookie says, with the given response fields. */
function personal (headers: Record<string, string> = {}): OriginHandler {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const body = JSON.stringify({ user: /session=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? 'anonymous' })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers })
    res.end(body)
  }
}

/** Answers with its own name, so a test can tell which origin a body came from. */
function named (name: string, headers: Record<string, string> = { 'cache-control': 'public, max-age=600' }): OriginHandler {
  return (req, res) => {
    const body = JSON.stringify({ origin: name, path: req.url })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers })
    res.end(body)
  }
}

/** Requests that waited on another's origin request (cachegate_coalesced_waiters_total). */
async function waiters (gw: GatewayHandle): Promise<number> {
  const metric = await gw.gateway.metrics.registry.getSingleMetric('cachegate_coalesced_waiters_total')?.get()
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0)
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('a page asked for with a session cookie and no Cache-Control is never given to another client', async (t) => {
      for (const headers of [{}, { 'cache-control': 'max-age=0' }, { 'last-modified': 'Mon, 01 Dec 2025 00:00:00 GMT', date: 'Thu, 01 Jan 2026 00:00:00 GMT' }]) {
        const origin = await startOrigin(t, personal(headers))
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, ...WINDOWS }] } })
        const alice = await gw.get('/account/profile', { cookie: 'session=alice' })
        t.same(JSON.parse(alice.body), { user: 'alice' })
        t.notMatch(alice.header('cache-status') ?? '', /stored/, `origin sent ${JSON.stringify(headers)}: not stored`)
        await gw.settled()
        gw.clock.advance(1000)
        const bob = await gw.get('/account/profile', { cookie: 'session=bob' })
        t.same(JSON.parse(bob.body), { user: 'bob' }, `another cookie, origin sent ${JSON.stringify(headers)}`)
        await gw.settled()
        const anonymous = await gw.get('/account/profile')
        t.same(JSON.parse(anonymous.body), { user: 'anonymous' }, `no cookie, origin sent ${JSON.stringify(headers)}`)
        t.equal(origin.count('/account/profile'), 3, 'every client asked the origin')
      }
    })

    t.test('a route default TTL never applies to a request with a session cookie', async (t) => {
      const origin = await startOrigin(t, personal())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, defaultTtl: '60s', ...WINDOWS }] } })
      const alice = await gw.get('/me', { cookie: 'session=alice' })
      t.match(alice.header('cache-status'), /detail=cookie/)
      await gw.settled()
      t.same(JSON.parse((await gw.get('/me')).body), { user: 'anonymous' })
      await gw.settled()
      const cached = await gw.get('/me', { cookie: 'session=carol' })
      t.same(JSON.parse(cached.body), { user: 'anonymous' }, 'a cookieless answer stored by the default TTL serves everyone')
      t.match(cached.header('cache-status'), /hit/)
    })

    t.test('a route that keys on a cookie still gets its default TTL for that cookie alone', async (t) => {
      const origin = await startOrigin(t, (req, res) => {
        const body = JSON.stringify({ currency: /currency=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? 'USD' })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, defaultTtl: '60s', key: { cookies: ['currency'] } }] } })
      await gw.get('/prices', { cookie: 'currency=EUR' })
      await gw.settled()
      const hit = await gw.get('/prices', { cookie: 'currency=EUR' })
      t.match(hit.header('cache-status'), /hit/)
      t.same(JSON.parse(hit.body), { currency: 'EUR' })
      const personalised = await gw.get('/prices', { cookie: 'currency=EUR; session=dave' })
      t.match(personalised.header('cache-status'), /hit/, 'the stored answer for currency=EUR serves it')
      t.equal(origin.count('/prices'), 1)
      const usd = await gw.get('/prices', { cookie: 'currency=USD; session=erin' })
      t.match(usd.header('cache-status'), /detail=cookie/, 'with a session cookie beside it, not stored by the default TTL')
    })

    t.test('the route opt-out lets cookie requests use the default TTL', async (t) => {
      const origin = await startOrigin(t, personal())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, defaultTtl: '60s', implicitCachingWithCookies: true }] } })
      await gw.get('/shared', { cookie: 'session=alice' })
      await gw.settled()
      const next = await gw.get('/shared')
      t.match(next.header('cache-status'), /hit/)
      t.same(JSON.parse(next.body), { user: 'alice' }, 'the documented risk of the opt-out')
    })

    t.test('explicit freshness from the origin shares a response to a cookie request', async (t) => {
      const origin = await startOrigin(t, personal({ 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/catalog', { cookie: 'session=alice' })
      await gw.settled()
      const next = await gw.get('/catalog')
      t.match(next.header('cache-status'), /hit/)
      t.equal(origin.count('/catalog'), 1)
    })

    t.test('route stale windows serve a response that was fresh for a positive time', async (t) => {
      const origin = await startOrigin(t, named('a', { 'cache-control': 'max-age=1' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, ...WINDOWS }] } })
      await gw.get('/fresh-once')
      await gw.settled()
      gw.clock.advance(5000)
      const stale = await gw.get('/fresh-once')
      t.match(stale.header('cache-status'), /hit; fwd=stale.*detail=stale-while-revalidate/)
      await gw.settled()
    })

    t.test('route stale windows never serve a response that was never fresh', async (t) => {
      const origin = await startOrigin(t, named('a', { 'cache-control': 'max-age=0' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, ...WINDOWS }] } })
      await gw.get('/never-fresh')
      await gw.settled()
      gw.clock.advance(1000)
      const next = await gw.get('/never-fresh')
      t.notMatch(next.header('cache-status') ?? '', /hit/)
      t.equal(origin.count('/never-fresh'), 2)
    })

    t.test('the origin\'s own stale-while-revalidate serves a zero-freshness response stale', async (t) => {
      const origin = await startOrigin(t, named('a', { 'cache-control': 'max-age=0, stale-while-revalidate=30' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/origin-swr')
      await gw.settled()
      gw.clock.advance(1000)
      const next = await gw.get('/origin-swr')
      t.match(next.header('cache-status'), /hit; fwd=stale/)
      await gw.settled()
    })

    t.test('dot segments cannot route a request to one origin and store it under another route\'s key', async (t) => {
      const api = await startOrigin(t, named('api'))
      const web = await startOrigin(t, named('web'))
      const gw = await gateway(t, kind, { config: { routes: [{ name: 'api', path: '/api', origin: api.url }, { name: 'web', path: '/', origin: web.url }] } })
      for (const attack of ['/x/../api/users', '/x/%2e%2e/api/users', '/x/%2E%2E/api/users', '/x/.%2e/api/users', '/./api/users']) {
        const res = await rawGet(gw.url, attack)
        t.equal(JSON.parse(res.body).origin, 'api', `${attack} is served by the /api route`)
        await gw.settled()
      }
      const victim = await gw.get('/api/users')
      t.same(JSON.parse(victim.body), { origin: 'api', path: '/api/users' })
      t.equal(web.count(), 0, 'the / route\'s origin was never asked')
      t.equal(api.count(), 1, 'every spelling is one key')
    })

    t.test('dot segments cannot bypass a disabled route', async (t) => {
      const priv = await startOrigin(t, named('private'))
      const web = await startOrigin(t, named('web'))
      const gw = await gateway(t, kind, { config: { routes: [{ path: '/private', origin: priv.url, enabled: false }, { path: '/', origin: web.url }] } })
      const first = await rawGet(gw.url, '/x/../private/data')
      t.equal(JSON.parse(first.body).origin, 'private')
      t.match(String(first.headers['cache-status']), /fwd=bypass; fwd-status=200; detail=route-disabled/)
      await gw.settled()
      const second = await gw.get('/private/data')
      t.match(second.header('cache-status'), /detail=route-disabled/)
      t.equal(priv.count(), 2, 'nothing of the disabled route was stored')
    })

    t.test('a client no-cache during an outage does not take the stale copy away from others', async (t) => {
      for (const forced of [{ 'cache-control': 'no-cache' }, { pragma: 'no-cache' }]) {
        let up = true
        const origin = await startOrigin(t, (req, res) => {
          if (!up) {
            res.writeHead(503, { 'content-type': 'text/plain', 'content-length': 4 })
            res.end('down')
            return
          }
          named('a', { 'cache-control': 'max-age=10', etag: '"v1"' })(req, res, 0)
        })
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, ...WINDOWS }] } })
        await gw.get('/outage')
        await gw.settled()
        up = false
        gw.clock.advance(60_000) // past freshness and the 30 s stale-while-revalidate window
        const forcedRes = await gw.get('/outage', forced)
        t.equal(forcedRes.status, 503, 'the client that asked to revalidate gets the origin\'s answer')
        await gw.settled()
        const other = await gw.get('/outage')
        t.equal(other.status, 200, `${JSON.stringify(forced)}: the next client still gets the stale copy`)
        t.match(other.header('cache-status'), /detail=stale-if-error/)
      }
    })

    t.test('request no-cache, no-store neither deletes the entry nor multiplies origin requests', async (t) => {
      let version = 0
      const origin = await startOrigin(t, (req, res) => {
        version++
        named(`v${version}`, { 'cache-control': 'max-age=600' })(req, res, 0)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/ns')
      await gw.settled()
      const forced = await gw.get('/ns', { 'cache-control': 'no-cache, no-store' })
      t.equal(JSON.parse(forced.body).origin, 'v2')
      await gw.settled()
      const burst = await Promise.all(Array.from({ length: 40 }, async () => await gw.get('/ns')))
      t.ok(burst.every((r) => JSON.parse(r.body).origin === 'v1'), 'everyone else still gets the stored entry, and no-store stored nothing')
      t.equal(origin.count('/ns'), 2, 'no origin request after the forced one')
    })

    t.test('concurrent forced refreshes of one key share one conditional origin request', async (t) => {
      let release: () => void = () => undefined
      const gate = new Promise<void>((resolve) => { release = resolve })
      let gated = false
      const origin = await startOrigin(t, async (req, res) => {
        if (gated) await gate
        if (req.headers['if-none-match'] === '"v1"') {
          res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=600' })
          res.end()
          return
        }
        named('a', { 'cache-control': 'max-age=600', etag: '"v1"' })(req, res, 0)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/forced')
      await gw.settled()
      gated = true
      const burst = Promise.all(Array.from({ length: 20 }, async () => await gw.get('/forced', { 'cache-control': 'no-cache' })))
      // The origin holds the one conditional request until the 19 others wait on it.
      while (await waiters(gw) < 19) await new Promise((resolve) => setImmediate(resolve))
      release()
      const replies = await burst
      t.ok(replies.every((r) => r.status === 200 && JSON.parse(r.body).origin === 'a'), 'every client got the answer')
      t.equal(replies.filter((r) => /fwd=request; fwd-status=304/.test(r.header('cache-status') ?? '')).length, 20)
      t.equal(origin.count('/forced'), 2, 'one origin request for 20 clients')
      t.equal(origin.requests[1]?.headers['if-none-match'], '"v1"')
    })

    t.test('a response that forbids stale use is never served stale by the route windows when the origin closes the connection', async (t) => {
      for (const cc of ['max-age=2, must-revalidate', 'max-age=2, proxy-revalidate', 'max-age=2, no-cache', 's-maxage=2']) {
        let up = true
        const origin = await startOrigin(t, (req, res) => {
          if (!up) {
            res.socket?.destroy()
            return
          }
          named('a', { 'cache-control': cc })(req, res, 0)
        })
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, ...WINDOWS }] } })
        await gw.get('/close')
        await gw.settled()
        up = false
        gw.clock.advance(3000)
        const res = await gw.get('/close')
        t.equal(res.status, 502, `${cc}: the origin's failure, not the stale copy`)
        t.notMatch(res.header('cache-status') ?? '', /hit/)
      }
    })

    t.test('a revalidation 304 carrying another ETag never reaches a client that sent no conditional', async (t) => {
      const origin = await startOrigin(t, (req, res) => {
        if (req.headers['if-none-match'] !== undefined) {
          res.writeHead(304, { etag: '"other"', 'cache-control': 'max-age=60', 'x-version': '2' })
          res.end()
          return
        }
        named('a', { 'cache-control': 'max-age=1', etag: '"v1"', 'x-version': '1' })(req, res, 0)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/etag-304')
      await gw.settled()
      gw.clock.advance(5000)
      const res = await gw.get('/etag-304')
      t.equal(res.status, 200)
      t.same(JSON.parse(res.body), { origin: 'a', path: '/etag-304' })
      t.equal(res.header('etag'), '"v1"', 'the stored ETag is kept')
      t.equal(res.header('x-version'), '2', 'the 304 freshened the other fields')
      await gw.settled()
      const again = await gw.get('/etag-304')
      t.match(again.header('cache-status'), /^cachegate; hit/, 'and the entry is fresh again')
    })

    t.test('a route with ignoreClientNoCache serves reloads from cache', async (t) => {
      const origin = await startOrigin(t, named('a'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, ignoreClientNoCache: true }] } })
      await gw.get('/reload')
      await gw.settled()
      for (const headers of [{ 'cache-control': 'no-cache' }, { pragma: 'no-cache' }, { 'cache-control': 'max-age=0' }]) {
        const res = await gw.get('/reload', headers)
        t.match(res.header('cache-status'), /^cachegate; hit/, JSON.stringify(headers))
      }
      t.equal(origin.count('/reload'), 1)
    })
  })
}

behaviours('memory')
behaviours('redis')
