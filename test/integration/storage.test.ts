// Storage rules (RFC 9111 §3): responses a shared cache must not store are passed through
// with the reason in Cache-Status, and the next request goes to the origin again.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin, json, type OriginHandler } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `storage${++prefixes}:` } } })
}

interface NotStoredCase {
  title: string
  handler: OriginHandler
  request?: Record<string, string>
  detail: string
  status?: number
}

const notStored: NotStoredCase[] = [
  { title: 'a response with Cache-Control: no-store is not stored', handler: json({ v: 1 }, { 'cache-control': 'no-store' }), detail: 'no-store' },
  { title: 'a response with Cache-Control: private is not stored', handler: json({ v: 1 }, { 'cache-control': 'private, max-age=60' }), detail: 'private' },
  { title: 'a response with Set-Cookie is not stored', handler: json({ v: 1 }, { 'cache-control': 'max-age=60', 'set-cookie': 'sid=abc; HttpOnly' }), detail: 'set-cookie' },
  {
    title: 'a response to a request with Authorization is not stored without public, s-maxage or must-revalidate',
    handler: json({ v: 1 }, { 'cache-control': 'max-age=60' }),
    request: { authorization: 'Bearer token-1' },
    detail: 'authorization'
  },
  { title: 'a response with Vary: * is not stored', handler: json({ v: 1 }, { 'cache-control': 'max-age=60', vary: '*' }), detail: 'vary-star' },
  {
    title: 'a 206 from the origin is passed through and not stored',
    handler: (_req, res) => {
      res.writeHead(206, { 'content-type': 'text/plain', 'content-range': 'bytes 0-4/10', 'content-length': 5, 'cache-control': 'max-age=60' })
      res.end('01234')
    },
    detail: 'partial-content',
    status: 206
  }
]

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    for (const c of notStored) {
      t.test(c.title, async (t) => {
        const origin = await startOrigin(t, c.handler)
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
        const first = await gw.get('/thing', c.request)
        t.equal(first.status, c.status ?? 200)
        t.equal(first.header('cache-status'), `cachegate; fwd=uri-miss; fwd-status=${c.status ?? 200}; detail=${c.detail}`)
        await gw.settled()
        const second = await gw.get('/thing', c.request)
        t.equal(second.status, c.status ?? 200)
        t.notMatch(second.header('cache-status'), /hit/)
        t.match(second.header('cache-status'), new RegExp(`detail=${c.detail}$`))
        t.equal(second.body, first.body)
        t.equal(origin.count('/thing'), 2, 'the second request reached the origin')
      })
    }

    t.test('the origin\'s 206 reaches the client with its Content-Range and body', async (t) => {
      const origin = await startOrigin(t, notStored[5]?.handler ?? json({}))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const res = await gw.get('/thing')
      t.equal(res.status, 206)
      t.equal(res.header('content-range'), 'bytes 0-4/10')
      t.equal(res.body, '01234')
    })

    t.test('the Set-Cookie of an unstored response still reaches its own client', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60', 'set-cookie': 'sid=abc; HttpOnly' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const res = await gw.get('/thing')
      t.equal(res.header('set-cookie'), 'sid=abc; HttpOnly')
    })

    for (const cc of ['public, max-age=60', 's-maxage=60', 'max-age=60, must-revalidate']) {
      t.test(`a response to a request with Authorization is stored when it says ${cc}`, async (t) => {
        const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': cc }))
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
        const first = await gw.get('/shared', { authorization: 'Bearer token-1' })
        t.equal(first.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; stored')
        await gw.settled()
        const second = await gw.get('/shared', { authorization: 'Bearer token-1' })
        t.match(second.header('cache-status'), /^cachegate; hit; ttl=60$/)
        t.equal(second.body, first.body)
        t.equal(origin.count('/shared'), 1)
      })
    }
  })
}

behaviours('memory')
behaviours('redis')
