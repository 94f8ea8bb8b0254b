/**
 * The coalescing invariant (issue 11): with Redis healthy, one origin request per key across
 * every instance, also when Redis answers later than the read deadline; with Redis paused,
 * at most one origin request per key per instance. A local flight is joined whatever the
 * store said, and a lock whose reply timed out is asked again rather than taken for granted.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ManualClock } from '../../src/clock.ts'
import { withGateway, type GatewayHandle, type Reply } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

const BODY = 'c'.repeat(32 * 1024)

interface Gated {
  handler: (req: IncomingMessage, res: ServerResponse, n: number) => Promise<void>
  open: () => void
  /** Resolves when the first request reached the origin. */
  arrived: Promise<void>
}

/** An origin whose answers wait until the test opens the gate: every request is surely concurrent. */
function gated (headers: Record<string, string> = { 'cache-control': 'max-age=60' }): Gated {
  let open!: () => void
  let arrivedResolve!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  const arrived = new Promise<void>((resolve) => { arrivedResolve = resolve })
  return {
    handler: async (_req, res) => {
      arrivedResolve()
      await gate
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length, ...headers })
      res.end(BODY)
    },
    open,
    arrived
  }
}

interface Burst {
  replies: Promise<Reply[]>
  /** Resolves once every request of the burst has reached its gateway (its server's 'request' event). */
  received: Promise<void>
}

/** n requests spread over the gateways in turn, all for one public host (so they share keys). */
function burst (gateways: GatewayHandle[], n: number, path: string): Burst {
  let seen = 0
  let all!: () => void
  const received = new Promise<void>((resolve) => { all = resolve })
  const count = (): void => { if (++seen === n) all() }
  for (const gw of gateways) gw.gateway.app.server.on('request', count)
  const replies = Promise.all(Array.from({ length: n }, async (_, i) => await (gateways[i % gateways.length] as GatewayHandle).get(path, { host: 'shop.example' })))
  const stop = (): void => { for (const gw of gateways) gw.gateway.app.server.off('request', count) }
  received.then(stop, stop)
  return { replies, received }
}

/** Requests an instance sent to the origin itself (it led a fetch), from its outcome events. */
function led (gw: GatewayHandle): number {
  return gw.outcomes.filter((o) => o.originStatus !== undefined && !o.collapsed).length
}

/**
 * n gateways sharing one Redis. Their breakers stay closed through these faults (a thousand
 * failures): an open breaker bypasses the store and the locks, the "Redis down" case where
 * coalescing is per instance; here the store must take part before and after the fault.
 */
async function instances (t: Test, n: number, origin: string, redis: RedisServer): Promise<GatewayHandle[]> {
  const clock = new ManualClock()
  const config = { routes: [{ origin }], redis: { url: redis.url, breaker: { failures: 1000 } } }
  const out: GatewayHandle[] = []
  for (let i = 0; i < n; i++) out.push(await withGateway(t, { config, clock }))
  return out
}

/** Pauses redis-server (SIGSTOP) for `ms`: the fault's duration, not a wait for something. */
async function pauseFor (redis: RedisServer, ms: number): Promise<void> {
  redis.pause()
  await new Promise((resolve) => setTimeout(resolve, ms))
  redis.resume()
}

t.test('four instances sharing a healthy Redis: 200 concurrent requests for one cold key reach the origin once', async (t) => {
  const g = gated()
  const origin = await startOrigin(t, g.handler)
  const redis = await startRedis(t)
  const gws = await instances(t, 4, origin.url, redis)
  const all = burst(gws, 200, '/cold')
  await all.received
  await g.arrived
  g.open()
  const replies = await all.replies
  t.equal(origin.count(), 1, 'one origin request across the four instances')
  t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the whole body')
})

for (const n of [2, 4]) {
  t.test(`${n} instances, Redis stalled for 120 ms (past the 50 ms read deadline, within the lock's): one origin request across instances`, async (t) => {
    const g = gated()
    const origin = await startOrigin(t, g.handler)
    const redis = await startRedis(t)
    const gws = await instances(t, n, origin.url, redis)
    const stall = pauseFor(redis, 120)
    const all = burst(gws, 100, '/stalled')
    await all.received
    await stall
    await g.arrived
    g.open()
    const replies = await all.replies
    t.equal(origin.count(), 1, 'a lookup past its deadline joined the flight, a lock reply past it was asked again')
    t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the whole body')
  })

  t.test(`${n} instances, Redis paused (SIGSTOP) for 300 ms during the burst: at most one origin request per instance`, async (t) => {
    const g = gated()
    const origin = await startOrigin(t, g.handler)
    const redis = await startRedis(t)
    const gws = await instances(t, n, origin.url, redis)
    const paused = pauseFor(redis, 300)
    const all = burst(gws, 100, '/paused')
    await all.received
    await paused
    await g.arrived
    g.open()
    const replies = await all.replies
    t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the whole body')
    t.ok(origin.count() <= n, `${origin.count()} origin requests for ${n} instances`)
    gws.forEach((gw, i) => t.ok(led(gw) <= 1, `instance ${i} fetched at most once (${led(gw)})`))
  })
}

t.test('a request whose lookup timed out joins the flight its instance already has for the URL', async (t) => {
  // The entry has no validators: an expired one is refetched as a miss of its known (empty)
  // variant, while requests whose lookup timed out know no variant. They must meet.
  const later: { gate?: Gated } = {}
  const origin = await startOrigin(t, async (req, res, n) => {
    if (later.gate !== undefined) { await later.gate.handler(req, res, n); return }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length, 'cache-control': 'max-age=1' })
    res.end(BODY)
  })
  const redis = await startRedis(t)
  const [gw] = await instances(t, 1, origin.url, redis) as [GatewayHandle]
  await gw.get('/expiring', { host: 'shop.example' })
  await gw.settled()
  const gate = later.gate = gated({ 'cache-control': 'max-age=60' })
  gw.clock.advance(5_000)
  const first = burst([gw], 5, '/expiring')
  await gate.arrived
  const paused = pauseFor(redis, 300)
  const second = burst([gw], 5, '/expiring')
  await second.received
  await paused
  gate.open()
  const replies = [...await first.replies, ...await second.replies]
  t.equal(origin.count(), 2, 'the warm-up and one refetch: the requests that could not read the store joined it')
  t.ok(replies.every((r) => r.status === 200 && r.body === BODY))
})
