// Methods beyond GET/HEAD/POST/PUT/PATCH/DELETE/OPTIONS (M-SEARCH, PROPFIND, LOCK, ...) are
// forwarded to the origin like any other unsafe method, and their success invalidates the
// stored URL (RFC 9111 §4.4); TRACE and CONNECT stay refused. On both stores.
import t from 'tap'
import type { Test } from 'tap'
import { request as httpRequest } from 'node:http'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `methods${++prefixes}:` } } })
}

/** A request with any method node:http can send (undici refuses some, e.g. M-SEARCH bodies). */
async function send (base: string, method: string, path: string, body?: string): Promise<{ status: number, body: string, headers: Record<string, string | string[] | undefined> }> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const headers: Record<string, string> = body !== undefined ? { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)) } : {}
    const req = httpRequest({ host: hostname, port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('M-SEARCH is forwarded with its body, and its success invalidates the stored URL', async (t) => {
      const bodies: string[] = []
      const origin = await startOrigin(t, async (req, res, n) => {
        let body = ''
        for await (const chunk of req) body += String(chunk)
        bodies.push(`${req.method ?? ''} ${body}`)
        const text = `${req.method ?? ''} #${n}`
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': text.length, 'cache-control': 'max-age=600' })
        res.end(text)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      t.equal((await gw.get('/devices')).body, 'GET #1')
      await gw.settled()
      t.match((await gw.get('/devices')).header('cache-status'), /^cachegate; hit/, 'stored')

      const search = await send(gw.url, 'M-SEARCH', '/devices', 'ssdp:all')
      t.equal(search.status, 200, 'not a 405')
      t.equal(search.body, 'M-SEARCH #2')
      t.equal(search.headers['cache-status'], 'cachegate; fwd=method; fwd-status=200')
      t.same(bodies, ['GET ', 'M-SEARCH ssdp:all'], 'the origin received the method and its body')

      const after = await gw.get('/devices')
      t.equal(after.body, 'GET #3', 'the stored response was invalidated')
      t.match(after.header('cache-status'), /fwd=uri-miss/)
    })

    t.test('every method the HTTP parser accepts is forwarded, except TRACE and CONNECT', async (t) => {
      const origin = await startOrigin(t, (req, res) => {
        res.writeHead(207, { 'content-type': 'text/plain' })
        res.end(`origin saw ${req.method ?? ''}`)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      for (const method of ['PROPFIND', 'LOCK', 'MKCOL', 'REPORT', 'SEARCH', 'SUBSCRIBE', 'NOTIFY']) {
        const res = await send(gw.url, method, '/dav/file')
        t.equal(res.status, 207, `${method} reaches the origin`)
        t.equal(res.body, `origin saw ${method}`)
      }
      const trace = await send(gw.url, 'TRACE', '/dav/file')
      t.equal(trace.status, 405, 'TRACE is refused (it would echo credentials back, cross-site tracing)')
      t.match(JSON.parse(trace.body), { code: 'CG_ERR_METHOD_NOT_ALLOWED' })
      t.notOk(origin.requests.some((r) => r.method === 'TRACE'), 'TRACE never reached the origin')
    })

    t.test('a forwarded method that fails does not invalidate', async (t) => {
      const origin = await startOrigin(t, (req, res, n) => {
        const status = req.method === 'GET' ? 200 : 500
        const text = `${req.method ?? ''} #${n}`
        res.writeHead(status, { 'content-type': 'text/plain', 'content-length': text.length, 'cache-control': 'max-age=600' })
        res.end(text)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/devices')
      await gw.settled()
      t.equal((await send(gw.url, 'M-SEARCH', '/devices')).status, 500)
      const after = await gw.get('/devices')
      t.equal(after.body, 'GET #1', 'still served from the cache')
      t.match(after.header('cache-status'), /^cachegate; hit/)
    })
  })
}

behaviours('memory')
behaviours('redis')
