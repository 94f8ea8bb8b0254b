/**
 * Request coalescing: the origin sees one request per key however many clients and
 * gateway instances ask at once (issue: stale-while-revalidate and coalescing).
 */
import t from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ManualClock } from '../../src/clock.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

/** An origin whose answers wait until the test opens the gate: no sleeps, and every request is surely concurrent. */
function gated (respond: (req: IncomingMessage, res: ServerResponse, n: number) => void): { handler: (req: IncomingMessage, res: ServerResponse, n: number) => Promise<void>, open: () => void, arrived: Promise<void> } {
  let open!: () => void
  let arrivedResolve!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  const arrived = new Promise<void>((resolve) => { arrivedResolve = resolve })
  return {
    handler: async (req, res, n) => {
      arrivedResolve()
      await gate
      respond(req, res, n)
    },
    open,
    arrived
  }
}

const BODY = JSON.stringify({ id: 7, name: 'Kettle', description: 'x'.repeat(20_000) })

function product (headers: Record<string, string> = {}): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY), 'cache-control': 'max-age=60', ...headers })
    res.end(BODY)
  }
}

async function burst (gateways: GatewayHandle[], n: number, path: string, headers?: (i: number) => Record<string, string>): Promise<Array<Awaited<ReturnType<GatewayHandle['get']>>>> {
  return await Promise.all(Array.from({ length: n }, async (_, i) => await (gateways[i % gateways.length] as GatewayHandle).get(path, headers?.(i))))
}

for (const kind of ['memory', 'redis'] as const) {
  t.test(`${kind} store: 200 concurrent requests for one cold key through one instance reach the origin once`, async (t) => {
    const g = gated(product())
    const origin = await startOrigin(t, g.handler)
    const redis = kind === 'redis' ? await startRedis(t) : undefined
    const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }], ...(redis !== undefined ? { redis: { url: redis.url } } : {}) } })
    const all = burst([gw], 200, '/products/7')
    await g.arrived
    g.open()
    const replies = await all
    t.equal(origin.count(), 1, 'the origin saw exactly one request')
    t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the whole body')
    const statuses = replies.map((r) => r.header('cache-status') ?? '')
    t.equal(statuses.filter((s) => s === 'cachegate; fwd=uri-miss; fwd-status=200; stored').length, 1, 'one leader fetched and stored it')
    t.ok(statuses.filter((s) => !s.endsWith('stored')).every((s) => /collapsed|; hit/.test(s)), 'every other client was collapsed onto it (or, arriving after the store, hit)')
    t.ok(statuses.filter((s) => /collapsed/.test(s)).length > 0, 'waiters say they were collapsed')
  })
}

t.test('200 concurrent requests through two instances sharing one Redis reach the origin once', async (t) => {
  const g = gated(product())
  const origin = await startOrigin(t, g.handler)
  const redis = await startRedis(t)
  const clock = new ManualClock()
  const config = { routes: [{ origin: origin.url }], redis: { url: redis.url } }
  const a = await withGateway(t, { config, clock })
  const b = await withGateway(t, { config, clock })
  // Both instances serve one public host, so they share keys.
  const all = burst([a, b], 200, '/products/7', () => ({ host: 'shop.example' }))
  await g.arrived
  g.open()
  const replies = await all
  t.equal(origin.count(), 1, 'the origin saw exactly one request')
  t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the whole body')
  const statuses = replies.map((r) => r.header('cache-status') ?? '')
  t.equal(statuses.filter((s) => s.endsWith('stored')).length, 1, 'one instance fetched and stored it')
  t.ok(statuses.filter((s) => !s.endsWith('stored')).every((s) => /collapsed|; hit/.test(s)), 'every other request was collapsed (or hit)')
  t.ok(statuses.some((s) => s === 'cachegate; fwd=uri-miss; collapsed'), 'waiters on the other instance were answered from the shared store')
})

t.test('a waiter on another instance goes to the origin itself after coalesceWait when the fill never comes', async (t) => {
  const origin = await startOrigin(t, product())
  const redis = await startRedis(t)
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: redis.url }, cache: { coalesceWait: '200ms' } } })
  // A fill lock left by an instance that died mid-fetch (it never publishes).
  const { lockKey } = await import('../../src/coordination/redis.ts')
  const { normalizeAbsoluteUrl } = await import('../../src/cache/key.ts')
  const n = normalizeAbsoluteUrl(gw.url + '/products/7')
  if (!n.ok) throw new Error(n.reason)
  await redis.client().set(lockKey('cg:', n.key, 'fill', '?'), 'dead-instance', 'PX', 60_000)
  const reply = await gw.get('/products/7')
  t.equal(reply.status, 200, 'the client is answered, not failed')
  t.equal(reply.body, BODY)
  t.equal(origin.count(), 1, 'it fetched the key itself')
})

t.test('an uncacheable response is never handed to a coalesced waiter', async (t) => {
  const g = gated((_req, res, n) => {
    const body = JSON.stringify({ user: n })
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'private', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  const origin = await startOrigin(t, g.handler)
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }] } })
  const all = burst([gw], 20, '/me')
  await g.arrived
  g.open()
  const replies = await all
  const bodies = new Set(replies.map((r) => r.body))
  t.equal(bodies.size, 20, 'each client got its own origin response')
  t.equal(origin.count(), 20)
  t.notOk(replies.some((r) => /collapsed/.test(r.header('cache-status') ?? '')), 'nobody was collapsed onto a private response')
  // Hit-for-miss: the next burst does not queue behind a fetch that cannot be shared.
  const next = await burst([gw], 5, '/me')
  t.equal(new Set(next.map((r) => r.body)).size, 5)
})

t.test('coalescing respects Vary: a waiter with another Accept-Language is not given the leader response', async (t) => {
  const g = gated((req, res) => {
    const lang = req.headers['accept-language'] ?? 'none'
    const body = JSON.stringify({ lang })
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60', vary: 'Accept-Language', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  const origin = await startOrigin(t, g.handler)
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }] } })
  const langs = ['en', 'de', 'en', 'de', 'fr', 'en']
  const all = burst([gw], langs.length, '/greeting', (i) => ({ 'accept-language': langs[i] as string }))
  await g.arrived
  g.open()
  const replies = await all
  replies.forEach((r, i) => t.same(JSON.parse(r.body), { lang: langs[i] }, `client ${i} got its own language`))
})
