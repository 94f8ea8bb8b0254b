// Unsafe methods (RFC 9111 §4.4): a successful POST, PUT or DELETE invalidates the stored
// target URI and its same-origin Location and Content-Location; a failed one does not.
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { text } from 'node:stream/consumers'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `invalidation${++prefixes}:` } } })
}

type Answer = { status: number, headers?: Record<string, string> }

/**
 * GETs answer `get <url> #<n>` (cacheable); other methods answer as `unsafe` says for their URL.
 * The count in the body shows whether a GET came from the origin again.
 */
function api (unsafe: (method: string, url: string) => Answer) {
  return async (req: IncomingMessage, res: ServerResponse, n: number): Promise<void> => {
    await text(req) // the request body, read and dropped
    if (req.method === 'GET') {
      const body = `get ${req.url ?? ''} #${n}`
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': 'max-age=600' })
      res.end(body)
      return
    }
    const a = unsafe(req.method ?? '', req.url ?? '')
    res.writeHead(a.status, { 'content-length': 0, ...a.headers })
    res.end()
  }
}

/** GETs each path and waits for the store writes. */
async function warm (gw: GatewayHandle, ...paths: string[]): Promise<void> {
  for (const p of paths) await gw.get(p)
  await gw.settled()
}

async function isHit (gw: GatewayHandle, path: string): Promise<boolean> {
  return /^cachegate; hit/.test((await gw.get(path)).header('cache-status') ?? '')
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      t.test(`a successful ${method} invalidates the stored target URI`, async (t) => {
        const origin = await startOrigin(t, api(() => ({ status: method === 'DELETE' ? 204 : 200 })))
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
        await warm(gw, '/items/1', '/items/2')
        t.ok(await isHit(gw, '/items/1'))
        const res = await gw.request('/items/1', method === 'DELETE' ? { method } : { method, body: '{}' })
        t.equal(res.status, method === 'DELETE' ? 204 : 200)
        const next = await gw.get('/items/1')
        t.match(next.header('cache-status'), /^cachegate; fwd=uri-miss; fwd-status=200; stored$/)
        t.equal(next.body, 'get /items/1 #4', 'the next GET reached the origin')
        t.ok(await isHit(gw, '/items/2'), 'other URLs stay stored')
      })
    }

    t.test('a successful unsafe method invalidates same-origin Location and Content-Location, not other origins', async (t) => {
      const origin = await startOrigin(t, api(() => ({
        status: 201,
        headers: { location: '/items/7', 'content-location': '/items/8?b=2&a=1' }
      })))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await warm(gw, '/items/7', '/items/8?a=1&b=2', '/items/9')
      const res = await gw.request('/items', { method: 'POST', body: '{}' })
      t.equal(res.status, 201)
      t.notOk(await isHit(gw, '/items/7'), 'Location was invalidated')
      t.notOk(await isHit(gw, '/items/8?a=1&b=2'), 'Content-Location was invalidated (normalized like a key)')
      t.ok(await isHit(gw, '/items/9'))
    })

    t.test('a Location on another origin is left alone', async (t) => {
      const origin = await startOrigin(t, api(() => ({ status: 201, headers: { location: 'http://elsewhere.example/items/7' } })))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await warm(gw, '/items/7')
      await gw.request('/items', { method: 'POST', body: '{}' })
      t.ok(await isHit(gw, '/items/7'))
    })

    t.test('a failed unsafe method does not invalidate', async (t) => {
      const origin = await startOrigin(t, api(() => ({ status: 500 })))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await warm(gw, '/items/1')
      const res = await gw.request('/items/1', { method: 'POST', body: '{}' })
      t.equal(res.status, 500)
      const next = await gw.get('/items/1')
      t.match(next.header('cache-status'), /^cachegate; hit/)
      t.equal(next.body, 'get /items/1 #1')
    })
  })
}

behaviours('memory')
behaviours('redis')
