/**
 * stale-while-revalidate, stale-if-error and background refresh (RFC 5861), on both stores.
 */
import t, { type Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { normalizeAbsoluteUrl } from '../../src/cache/key.ts'
import { lockKey } from '../../src/coordination/redis.ts'
import { withGateway } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>

function send (res: ServerResponse, body: string, headers: Record<string, string>, status = 200): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers })
  res.end(body)
}

for (const kind of ['memory', 'redis'] as const) {
  t.test(`${kind} store`, async (t) => {
    let redis: RedisServer | undefined
    if (kind === 'redis') redis = await startRedis(t)
    let prefixN = 0
    const setup = async (t: Test, handler: Handler, route: Record<string, unknown> = {}): Promise<{ origin: Origin, gw: Awaited<ReturnType<typeof withGateway>> }> => {
      const origin = await startOrigin(t, handler)
      const gw = await withGateway(t, {
        config: { routes: [{ origin: origin.url, ...route }], ...(redis !== undefined ? { redis: { url: redis.url, keyPrefix: `s${prefixN++}:` } } : {}) }
      })
      return { origin, gw }
    }

    t.test('a stale hit inside stale-while-revalidate is served at once while one background refresh runs', async (t) => {
      let release!: () => void
      const held = new Promise<void>((resolve) => { release = resolve })
      let refreshArrived!: () => void
      const arrived = new Promise<void>((resolve) => { refreshArrived = resolve })
      const { origin, gw } = await setup(t, async (_req, res, n) => {
        if (n >= 2) {
          refreshArrived()
          await held // the origin is slow: it answers only when the test says so
        }
        send(res, `version ${n}`, { 'cache-control': 'max-age=10, stale-while-revalidate=60' })
      })
      t.equal((await gw.get('/p')).body, 'version 1')
      await gw.settled()
      gw.clock.advance(15_000)
      const stale = await gw.get('/p')
      t.equal(stale.body, 'version 1', 'the stale body is served')
      t.equal(stale.header('cache-status'), 'cachegate; hit; fwd=stale; ttl=-5; detail=stale-while-revalidate')
      t.equal(stale.header('age'), '15')
      await arrived
      t.equal(origin.count(), 2, 'the refresh is at the origin, which has not answered yet, and the client already has its answer')
      // More stale hits meanwhile do not start more refreshes.
      await gw.get('/p')
      await gw.get('/p')
      release()
      await gw.settled()
      t.equal(origin.count(), 2, 'one refresh only')
      const fresh = await gw.get('/p')
      t.equal(fresh.body, 'version 2', 'the refreshed body is served next')
      t.match(fresh.header('cache-status'), /^cachegate; hit; ttl=10$/)
    })

    t.test('a background refresh answered 304 keeps the body and refreshes headers and freshness', async (t) => {
      const { origin, gw } = await setup(t, (req, res, n) => {
        if (req.headers['if-none-match'] === '"v1"') {
          res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=10, stale-while-revalidate=60', 'x-checked': String(n) })
          res.end()
          return
        }
        send(res, 'the body', { etag: '"v1"', 'cache-control': 'max-age=10, stale-while-revalidate=60', 'x-checked': String(n) })
      })
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(12_000)
      t.equal((await gw.get('/p')).header('x-checked'), '1', 'stale served')
      await gw.settled()
      t.equal(origin.requests[1]?.headers['if-none-match'], '"v1"', 'the refresh was conditional')
      const after = await gw.get('/p')
      t.equal(after.body, 'the body', 'the body was kept')
      t.equal(after.header('x-checked'), '2', 'headers came from the 304')
      t.match(after.header('cache-status'), /^cachegate; hit; ttl=10$/, 'freshness renewed')
      t.equal(origin.count(), 2)
    })

    t.test('an uncacheable refresh answer removes the entry', async (t) => {
      const { origin, gw } = await setup(t, (_req, res, n) => {
        send(res, `v${n}`, { 'cache-control': n === 1 ? 'max-age=10, stale-while-revalidate=60' : 'no-store' })
      })
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(12_000)
      await gw.get('/p')
      await gw.settled()
      const next = await gw.get('/p')
      t.equal(next.body, 'v3', 'the next request went to the origin')
      t.equal(origin.count(), 3)
    })

    t.test('a route keep window holds an entry with an ETag past its freshness so a 304 revalidates it', async (t) => {
      const { origin, gw } = await setup(t, (req, res) => {
        if (req.headers['if-none-match'] === '"k1"') {
          res.writeHead(304, { etag: '"k1"', 'cache-control': 'max-age=10' })
          res.end()
          return
        }
        send(res, 'kept body', { etag: '"k1"', 'cache-control': 'max-age=10' })
      }, { keep: '10m' })
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(5 * 60_000)
      const r = await gw.get('/p')
      t.equal(r.body, 'kept body')
      t.equal(r.header('cache-status'), 'cachegate; fwd=stale; fwd-status=304; stored', 'revalidated with a conditional request')
      t.equal(origin.requests[1]?.headers['if-none-match'], '"k1"')
      await gw.settled()
      t.match((await gw.get('/p')).header('cache-status'), /^cachegate; hit; ttl=10$/, 'fresh again without refetching the body')
    })

    t.test('the route staleWhileRevalidate default applies when the origin sends none', async (t) => {
      const { gw } = await setup(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': 'max-age=10' }), { staleWhileRevalidate: '30s' })
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(20_000)
      t.match((await gw.get('/p')).header('cache-status'), /fwd=stale/)
      await gw.settled()
      gw.clock.advance(45_000)
      const late = await gw.get('/p')
      t.equal(late.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; stored', 'beyond the window the entry is gone (kept for freshness plus the windows only) and the client waits for the origin')
    })

    for (const [name, cc] of [['must-revalidate', 'max-age=10, stale-while-revalidate=60, must-revalidate'], ['no-cache', 'no-cache, max-age=10, stale-while-revalidate=60']] as const) {
      t.test(`${name} on the response switches stale serving off`, async (t) => {
        const { origin, gw } = await setup(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': cc }))
        await gw.get('/p')
        await gw.settled()
        gw.clock.advance(12_000)
        const r = await gw.get('/p')
        t.equal(r.body, 'v2', 'the client waited for a fresh answer')
        t.equal(origin.count(), 2)
      })
    }

    t.test('request max-age=0 or no-cache switches stale serving off', async (t) => {
      const { gw } = await setup(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': 'max-age=10, stale-while-revalidate=60' }))
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(12_000)
      t.equal((await gw.get('/p', { 'cache-control': 'max-age=0' })).body, 'v2')
      await gw.settled()
      gw.clock.advance(12_000)
      t.equal((await gw.get('/p', { 'cache-control': 'no-cache' })).body, 'v3')
    })

    t.test('stale-if-error serves the stored response while the origin is down, and stops when the window ends', async (t) => {
      let down = false
      const { gw } = await setup(t, (_req, res, n) => {
        if (down) {
          res.destroy()
          return
        }
        send(res, `v${n}`, { 'cache-control': 'max-age=10, stale-if-error=60' })
      })
      await gw.get('/p')
      await gw.settled()
      down = true
      gw.clock.advance(30_000)
      const r = await gw.get('/p')
      t.equal(r.status, 200)
      t.equal(r.body, 'v1')
      t.match(r.header('cache-status'), /^cachegate; hit; fwd=stale; ttl=-20; detail=stale-if-error$/)
      gw.clock.advance(45_000)
      const late = await gw.get('/p')
      t.equal(late.status, 502, 'beyond the window the error goes through')
      t.equal(JSON.parse(late.body).code, 'CG_ERR_ORIGIN_UNREACHABLE')
    })

    t.test('stale-if-error covers 500, 502, 503 and 504 answers', async (t) => {
      let status = 200
      const { gw } = await setup(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': 'max-age=10, stale-if-error=60' }, status))
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(10_000)
      for (const s of [500, 502, 503, 504]) {
        status = s
        gw.clock.advance(5_000)
        const r = await gw.get('/p')
        t.equal(r.body, 'v1', `served stale on ${s}`)
        t.match(r.header('cache-status'), new RegExp(`fwd-status=${s}.*detail=stale-if-error`))
      }
      // 404 is not an error that stale-if-error hides.
      status = 404
      gw.clock.advance(1000)
      t.equal((await gw.get('/p')).status, 404)
    })

    t.test('a background refresh that meets an origin error leaves the stale entry serving', async (t) => {
      let status = 200
      const { origin, gw } = await setup(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': 'max-age=10, stale-while-revalidate=30, stale-if-error=60' }, status))
      await gw.get('/p')
      await gw.settled()
      status = 503
      gw.clock.advance(15_000)
      t.equal((await gw.get('/p')).body, 'v1', 'stale-while-revalidate answer')
      await gw.settled()
      t.equal(origin.count(), 2, 'the refresh ran and failed')
      gw.clock.advance(30_000)
      const r = await gw.get('/p')
      t.equal(r.body, 'v1', 'still served from the stale entry, now under stale-if-error')
      t.match(r.header('cache-status'), /detail=stale-if-error/)
    })

    t.test('the route staleIfError default applies when the origin sends none', async (t) => {
      let down = false
      const { gw } = await setup(t, (_req, res, n) => {
        if (down) {
          res.destroy()
          return
        }
        send(res, `v${n}`, { 'cache-control': 'max-age=10' })
      }, { staleIfError: '1m' })
      await gw.get('/p')
      await gw.settled()
      down = true
      gw.clock.advance(40_000)
      t.equal((await gw.get('/p')).body, 'v1')
    })

    t.test('TTL jitter shortens freshness by up to the configured percentage', async (t) => {
      const origin = await startOrigin(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': 'max-age=100' }))
      const gw = await withGateway(t, {
        config: { routes: [{ origin: origin.url, ttlJitter: 20 }], ...(redis !== undefined ? { redis: { url: redis.url, keyPrefix: 'jit:' } } : {}) },
        random: () => 0.5
      })
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(91_000)
      t.equal((await gw.get('/p')).body, 'v2', 'with 20% jitter and random 0.5 the entry lived 90 s, not 100 s')
    })

    t.test('refresh-ahead refreshes a hot key shortly before it expires, without serving stale', async (t) => {
      const origin = await startOrigin(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': 'max-age=100' }))
      const gw = await withGateway(t, {
        config: { routes: [{ origin: origin.url, refreshAhead: true }], ...(redis !== undefined ? { redis: { url: redis.url, keyPrefix: 'ra:' } } : {}) },
        random: () => 0.3
      })
      await gw.get('/p')
      await gw.settled()
      gw.clock.advance(80_000)
      await gw.get('/p')
      await gw.settled()
      t.equal(origin.count(), 1, 'no early refresh outside the last tenth of the lifetime')
      gw.clock.advance(15_000) // 5 s left of 100: probability 0.5 > 0.3
      const hit = await gw.get('/p')
      t.match(hit.header('cache-status'), /^cachegate; hit; ttl=5$/, 'the client got a fresh hit')
      await gw.settled()
      t.equal(origin.count(), 2, 'and one refresh ran behind it')
      gw.clock.advance(10_000)
      t.equal((await gw.get('/p')).body, 'v2', 'so the key did not go stale')
    })

    if (redis !== undefined) {
      const server = redis
      t.test('a refresh lock left by a killed instance blocks refreshes only until its TTL', async (t) => {
        const { origin, gw } = await setup(t, (_req, res, n) => send(res, `v${n}`, { 'cache-control': 'max-age=10, stale-while-revalidate=600' }))
        await gw.get('/p')
        await gw.settled()
        const n = normalizeAbsoluteUrl(gw.url + '/p')
        if (!n.ok) throw new Error(n.reason)
        const prefix = `s${prefixN - 1}:`
        const raw = server.client()
        await raw.set(lockKey(prefix, n.key, 'refresh', ''), 'killed-instance', 'PX', 300)
        gw.clock.advance(20_000)
        t.equal((await gw.get('/p')).body, 'v1')
        await gw.settled()
        t.equal(origin.count(), 1, 'no refresh while the dead instance holds the lock')
        // Wait for Redis to expire the lock (its own clock), polling its TTL.
        while (await raw.pttl(lockKey(prefix, n.key, 'refresh', '')) > 0) await new Promise((resolve) => setTimeout(resolve, 20))
        await gw.get('/p')
        await gw.settled()
        t.equal(origin.count(), 2, 'after the TTL the refresh runs')
        t.equal((await gw.get('/p')).body, 'v2')
      })
    }
  })
}
