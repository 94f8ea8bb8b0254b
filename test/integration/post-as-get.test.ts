// A POST response kept as the GET response of its URL (RFC 9110 §9.3.3, conformance test
// method-POST): only a 200/203 with the origin's own freshness and a Content-Location naming the
// POST's own URL, after the POST's §4.4 invalidation, with every rule a GET response meets; a
// body cut short or too large is never stored. On both stores, with a real origin.
import t from 'tap'
import type { Test } from 'tap'
import { request as httpRequest, type ServerResponse } from 'node:http'
import { text as readText } from 'node:stream/consumers'
import { ManualClock } from '../../src/clock.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { withGatewayOn, type GatewayHandle, type GatewayOptions, type Reply } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  return await withGatewayOn(t, kind === 'memory' ? undefined : redis, options)
}

const S = 1000

/** How the origin answers a POST: status, fields (beyond Content-Length and Content-Type) and body. */
interface PostAnswer {
  status?: number
  headers: Record<string, string | string[]>
  body?: string
}

/**
 * An origin answering GET `GET <path> #<n>` (max-age=600) and POST as `answer` says, given the
 * request (its path and fields); `write` replaces the POST answer entirely (cut-short bodies).
 */
async function origin (t: Test, answer: (path: string, headers: Record<string, string | string[] | undefined>) => PostAnswer, write?: (res: ServerResponse) => void): Promise<Origin> {
  return await startOrigin(t, async (req, res, n) => {
    await readText(req)
    const path = req.url ?? ''
    if (req.method !== 'POST') {
      const text = `GET ${path} #${n}`
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), 'cache-control': 'max-age=600' })
      res.end(text)
      return
    }
    if (write !== undefined) {
      write(res)
      return
    }
    const a = answer(path, req.headers)
    const text = a.body ?? `POST ${path} #${n}`
    res.writeHead(a.status ?? 200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), ...a.headers })
    res.end(text)
  })
}

async function post (gw: GatewayHandle, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return await gw.request(path, { method: 'POST', headers: { 'content-type': 'text/plain', ...headers }, body: '12345' })
}

/** POSTs, reads the response head and leaves without reading the body: the Cache-Status it got. */
async function postAndLeave (gw: GatewayHandle, path: string): Promise<string | undefined> {
  const { hostname, port } = new URL(gw.url)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'POST', headers: { 'content-type': 'text/plain', 'content-length': '5' }, agent: false }, (res) => {
      const status = res.headers['cache-status']
      res.destroy()
      resolve(Array.isArray(status) ? status.join(', ') : status)
    })
    req.on('error', reject)
    req.end('12345')
  })
}

/** GETs as the origin saw them. */
function gets (o: Origin): number {
  return o.requests.filter((r) => r.method === 'GET').length
}

const fresh = (location: string): Record<string, string> => ({ 'cache-control': 'max-age=60', 'content-location': location })

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('a POST with Expires, Date and its own URL in Content-Location answers the next GET from the cache (method-POST)', async (t) => {
      const clock = new ManualClock()
      let base = ''
      const o = await origin(t, (path) => ({
        headers: {
          expires: new Date(clock.now() + 30 * 86_400 * S).toUTCString(),
          date: new Date(clock.now()).toUTCString(),
          'content-location': path === '/relative' ? '/relative' : `${base}/absolute`
        }
      }))
      const gw = await gateway(t, kind, { clock, config: { routes: [{ origin: o.url }] } })
      base = gw.url
      for (const path of ['/relative', '/absolute']) {
        const sent = await post(gw, path)
        t.equal(sent.status, 200)
        t.equal(sent.header('cache-status'), 'cachegate; fwd=method; fwd-status=200; stored', `${path}: the POST says stored`)
        await gw.settled()
        const got = await gw.get(path)
        t.equal(got.body, sent.body, `${path}: the GET gets the POST's response`)
        t.match(got.header('cache-status'), /^cachegate; hit/)
        t.equal(got.header('content-location'), path === '/relative' ? '/relative' : `${base}/absolute`)
      }
      t.equal(gets(o), 0, 'no GET reached the origin')
    })

    t.test('a Content-Location naming another path, host or origin stores nothing, under either URL', async (t) => {
      // The POST's X-Location names the Content-Location the origin sends back.
      const o = await origin(t, (_path, headers) => ({ headers: fresh(String(headers['x-location'])) }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url }] } })
      const port = new URL(gw.url).port
      // Same-origin URLs a buggy cache would fill with the POST's response, and other origins'.
      const locations: Array<{ location: string, named?: string }> = [
        { location: '/victim', named: '/victim' },
        { location: '/items?page=2', named: '/items?page=2' },
        { location: 'http://evil.example/items' },
        { location: '//evil.example/items' },
        { location: `http://localhost:${port}/items` }, // the same port and path under another host name
        { location: `https://127.0.0.1:${port}/items` } // another scheme
      ]
      for (const { location, named } of locations) {
        const sent = await post(gw, '/items', { 'x-location': location })
        t.equal(sent.header('cache-status'), 'cachegate; fwd=method; fwd-status=200', `${location}: not stored`)
        await gw.settled()
        const own = await gw.get('/items')
        t.notMatch(own.body, /^POST/, `${location}: the POST's URL gets the origin's GET response`)
        t.notMatch(own.header('cache-status'), /hit/, `${location}: a miss (invalidated by the POST, §4.4)`)
        if (named !== undefined) t.notMatch((await gw.get(named)).body, /^POST/, `${location}: the named URL gets the origin's GET response`)
        await gw.settled()
      }
    })

    t.test('without the origin\'s own freshness nothing is stored, even with a route defaultTtl', async (t) => {
      const o = await origin(t, (path) => ({ headers: { 'content-location': path, 'last-modified': 'Thu, 01 Jan 2025 00:00:00 GMT' } }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url, defaultTtl: '10m' }] } })
      t.equal((await post(gw, '/implicit')).header('cache-status'), 'cachegate; fwd=method; fwd-status=200')
      await gw.settled()
      t.equal((await gw.get('/implicit')).body, 'GET /implicit #2')
    })

    t.test('the route\'s stale windows never apply to a kept POST response', async (t) => {
      const clock = new ManualClock()
      const o = await origin(t, (path) => ({ headers: { 'cache-control': 'max-age=10', 'content-location': path } }))
      const gw = await gateway(t, kind, { clock, config: { routes: [{ origin: o.url, staleWhileRevalidate: '10m', staleIfError: '10m' }] } })
      const sent = await post(gw, '/windows')
      await gw.settled()
      t.equal((await gw.get('/windows')).body, sent.body, 'fresh: served from the cache')
      clock.advance(11 * S)
      const later = await gw.get('/windows')
      t.equal(later.body, 'GET /windows #2', 'stale: fetched, not served stale under the route\'s window')
      t.notMatch(later.header('cache-status'), /hit/)
    })

    t.test('a POST with credentials and only max-age is not stored; with public it is', async (t) => {
      const o = await origin(t, (path, headers) => ({ headers: { ...fresh(path), ...(headers['x-public'] !== undefined ? { 'cache-control': 'public, max-age=60' } : {}) } }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url }] } })
      const cases: Array<{ path: string, headers: Record<string, string>, status: string }> = [
        { path: '/auth', headers: { authorization: 'Bearer alice' }, status: 'cachegate; fwd=method; fwd-status=200; detail=authorization' },
        { path: '/cookie', headers: { cookie: 'session=alice' }, status: 'cachegate; fwd=method; fwd-status=200; detail=cookie' }
      ]
      for (const c of cases) {
        const sent = await post(gw, c.path, c.headers)
        t.equal(sent.header('cache-status'), c.status, `${c.path}: refused, and why`)
        await gw.settled()
        const got = await gw.get(c.path)
        t.notMatch(got.body, /^POST/, `${c.path}: another client does not get alice's response`)
      }
      const shared = await post(gw, '/public', { authorization: 'Bearer alice', 'x-public': '1' })
      t.match(shared.header('cache-status'), /; stored$/)
      await gw.settled()
      t.equal((await gw.get('/public')).body, shared.body, 'public is the origin\'s permission to share (§3.5)')
    })

    t.test('implicitCachingWithCookies does not share a POST with a session cookie and only max-age', async (t) => {
      const o = await origin(t, (path) => ({ headers: fresh(path) }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url, implicitCachingWithCookies: true }] } })
      const sent = await post(gw, '/cart', { cookie: 'session=alice' })
      t.equal(sent.header('cache-status'), 'cachegate; fwd=method; fwd-status=200; detail=cookie', 'refused, and why')
      await gw.settled()
      const got = await gw.get('/cart')
      t.equal(got.body, 'GET /cart #2', 'another client does not get alice\'s response')
    })

    t.test('a refused POST response goes to its client untouched: once the client leaves, the origin is read no more', async (t) => {
      const total = 32 * 1024 * 1024
      let closed!: (end: { bytes: number, finished: boolean }) => void
      const originClosed = new Promise<{ bytes: number, finished: boolean }>((resolve) => { closed = resolve })
      const o = await origin(t, () => ({ headers: {} }), (res) => {
        // Longer than maxObjectSize, written as fast as it is read.
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'private, max-age=60', 'content-location': '/refused' })
        const chunk = Buffer.alloc(64 * 1024, 'x')
        let bytes = 0
        res.on('close', () => { closed({ bytes, finished: res.writableFinished }) })
        const more = (): void => {
          while (bytes < total) {
            bytes += chunk.length
            if (!res.write(chunk)) {
              res.once('drain', more)
              return
            }
          }
          res.end()
        }
        more()
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url }] } })
      t.equal(await postAndLeave(gw, '/refused'), 'cachegate; fwd=method; fwd-status=200; detail=private')
      const end = await originClosed
      t.notOk(end.finished, `the origin's response was cut when the client left, after ${end.bytes} of ${total} bytes`)
    })

    t.test('private or Set-Cookie stores nothing, and the POST still reaches its client whole', async (t) => {
      const o = await origin(t, (path) => path === '/private'
        ? { headers: { 'cache-control': 'private, max-age=60', 'content-location': path } }
        : { headers: { ...fresh(path), 'set-cookie': 'sid=alice' } })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url }] } })
      const priv = await post(gw, '/private')
      t.equal(priv.header('cache-status'), 'cachegate; fwd=method; fwd-status=200; detail=private')
      const cookie = await post(gw, '/set-cookie')
      t.equal(cookie.header('cache-status'), 'cachegate; fwd=method; fwd-status=200; detail=set-cookie')
      t.equal(cookie.header('set-cookie'), 'sid=alice', 'the client that posted gets its cookie')
      await gw.settled()
      t.equal((await gw.get('/private')).body, 'GET /private #3')
      const other = await gw.get('/set-cookie')
      t.equal(other.body, 'GET /set-cookie #4')
      t.equal(other.header('set-cookie'), undefined)
    })

    t.test('the variant is the POST\'s: a response that varies is kept for the POST\'s header values only', async (t) => {
      const o = await origin(t, (path, headers) => ({ headers: { ...fresh(path), vary: 'Accept-Language' }, body: `POST in ${String(headers['accept-language'])}` }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url }] } })
      t.match((await post(gw, '/greeting', { 'accept-language': 'fr' })).header('cache-status'), /; stored$/)
      await gw.settled()
      const fr = await gw.get('/greeting', { 'accept-language': 'fr' })
      t.equal(fr.body, 'POST in fr')
      t.match(fr.header('cache-status'), /^cachegate; hit/)
      const en = await gw.get('/greeting', { 'accept-language': 'en' })
      t.equal(en.body, 'GET /greeting #2', 'another language is another variant')
    })

    t.test('a POST body cut short by the origin stores nothing (with and without Content-Length)', async (t) => {
      for (const length of [true, false]) {
        const o = await origin(t, () => ({ headers: {} }), (res) => {
          res.writeHead(200, { 'content-type': 'text/plain', ...fresh('/cut'), ...(length ? { 'content-length': 100 } : {}) })
          res.write('partial', () => { res.socket?.destroy() })
        })
        const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url }] } })
        await gw.get('/cut')
        await gw.settled()
        // Cut short once the answer started, or a 502 when the origin failed before it did.
        const seen = await post(gw, '/cut').then((r) => r.status, () => 'cut short')
        t.ok(seen === 'cut short' || seen === 502, `the client sees the failure (${seen})`)
        await gw.settled()
        const got = await gw.get('/cut')
        t.equal(got.body, 'GET /cut #3', `content-length ${String(length)}: the next GET is fetched, nothing partial was stored`)
        t.notMatch(got.header('cache-status'), /hit/)
      }
    })

    t.test('a POST body over maxObjectSize reaches its client whole and is not stored', async (t) => {
      const big = 'x'.repeat(4096)
      for (const length of [true, false]) {
        const o = await origin(t, () => ({ headers: {} }), (res) => {
          res.writeHead(200, { 'content-type': 'text/plain', ...fresh('/big'), ...(length ? { 'content-length': big.length } : {}) })
          res.write(big.slice(0, 2048))
          res.end(big.slice(2048))
        })
        const gw = await gateway(t, kind, { config: { cache: { maxObjectSize: '1KiB' }, routes: [{ origin: o.url }] } })
        const sent = await post(gw, '/big')
        t.equal(sent.body, big)
        await gw.settled()
        t.equal((await gw.get('/big')).body, 'GET /big #2', `content-length ${String(length)}: not stored`)
      }
    })

    t.test('storePostResponses: false keeps every POST response out of the cache', async (t) => {
      const o = await origin(t, (path) => ({ headers: fresh(path) }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url, storePostResponses: false }] } })
      t.equal((await post(gw, '/off')).header('cache-status'), 'cachegate; fwd=method; fwd-status=200')
      await gw.settled()
      t.equal((await gw.get('/off')).body, 'GET /off #2')
    })

    t.test('a POST answered 500 removes and replaces nothing', async (t) => {
      const o = await origin(t, (path) => ({ status: 500, headers: fresh(path) }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: o.url }] } })
      t.equal((await gw.get('/kept')).body, 'GET /kept #1')
      await gw.settled()
      const failed = await post(gw, '/kept')
      t.equal(failed.status, 500)
      t.equal(failed.header('cache-status'), 'cachegate; fwd=method; fwd-status=500')
      await gw.settled()
      const got = await gw.get('/kept')
      t.equal(got.body, 'GET /kept #1', 'the stored GET response is still served')
      t.match(got.header('cache-status'), /^cachegate; hit/)
    })
  })
}

behaviours('memory')
behaviours('redis')
