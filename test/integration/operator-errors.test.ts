/**
 * Errors an operator can act on: a busy port names its listener and how to move it; an
 * unreachable origin is logged with its URL and the error code, while the client's body names
 * the route and no internal address. On both stores for the origin case.
 */
import t from 'tap'
import type { Test } from 'tap'
import net from 'node:net'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: 'memory' | 'redis', options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `operr${++prefixes}:` } } })
}

/** A port something else listens on, released on teardown. */
async function busyPort (t: Test): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => await new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as net.AddressInfo).port
}

/** A port nothing listens on (bound, then released). */
async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

t.test('a busy admin port says it is the admin listener and how to move it', async (t) => {
  const port = await busyPort(t)
  await t.rejects(withGateway(t, { config: { admin: { port }, routes: [{ origin: 'http://127.0.0.1:1' }] } }), {
    message: new RegExp(`admin listener.*127\\.0\\.0\\.1:${port}.*ADMIN_PORT.*admin\\.port`)
  })
})

t.test('a busy public port says it is the public listener and how to move it', async (t) => {
  const port = await busyPort(t)
  await t.rejects(withGateway(t, { config: { listen: { port }, routes: [{ origin: 'http://127.0.0.1:1' }] } }), {
    message: new RegExp(`public listener.*127\\.0\\.0\\.1:${port}.*PORT.*listen\\.port`)
  })
})

for (const kind of ['memory', 'redis'] as const) {
  t.test(`on the ${kind} store, an unreachable origin is logged with its URL and ECONNREFUSED; the client's body names the route only`, async (t) => {
    const port = await closedPort()
    const origin = `http://127.0.0.1:${port}`
    const gw = await gateway(t, kind, { config: { routes: [{ name: 'catalog', origin }] } })
    for (const [method, path] of [['GET', '/cached'], ['POST', '/passed']] as const) {
      const res = await gw.request(path, { method, ...(method === 'POST' ? { headers: { 'content-type': 'text/plain' }, body: 'x' } : {}) })
      t.equal(res.status, 502, `${method}`)
      const body = JSON.parse(res.body) as { code: string, message: string }
      t.equal(body.code, 'CG_ERR_ORIGIN_UNREACHABLE')
      t.match(body.message, /route "catalog"/, 'the body names the route')
      t.notMatch(res.body, String(port), 'the body does not give the origin\'s address away')
      const line = gw.logLines.map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'origin unreachable' && l.method === method)
      t.ok(line, `${method}: one log line for the failure`)
      t.match(line, { level: 40, route: 'catalog', origin, code: 'ECONNREFUSED' })
    }
  })
}

for (const kind of ['memory', 'redis'] as const) {
  t.test(`on the ${kind} store, failed background refreshes are logged at warn, at most once a minute per route`, async (t) => {
    let status = 200
    const origin = await startOrigin(t, (_req, res) => {
      res.writeHead(status, { 'content-type': 'text/plain', 'cache-control': 'max-age=10, stale-while-revalidate=600' })
      res.end('v')
    })
    const gw = await gateway(t, kind, { config: { routes: [{ name: 'catalog', origin: origin.url }] } })
    await gw.get('/a')
    await gw.get('/b')
    await gw.settled()
    status = 503
    gw.clock.advance(15_000)
    const refreshWarnings = (): Array<Record<string, unknown>> => gw.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'background refresh failed')
    await gw.get('/a')
    await gw.settled()
    await gw.get('/b')
    await gw.settled()
    t.equal(refreshWarnings().length, 1, 'two failures within a minute: one line')
    t.match(refreshWarnings()[0], { level: 40, route: 'catalog' })
    gw.clock.advance(61_000)
    await gw.get('/a')
    await gw.settled()
    t.equal(refreshWarnings().length, 2, 'a minute later, the next failure is logged')
    t.match(refreshWarnings()[1], { suppressed: 1 }, 'with the count of failures not logged meanwhile')
  })
}

t.test('a Redis that stops answering is logged once a second, with how many failures went unlogged, not once per request', async (t) => {
  const own = await startRedis(t)
  const origin = await startOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2, 'cache-control': 'max-age=60' })
    res.end('ok')
  })
  // A breaker that stays closed: every lookup goes to the stopped Redis and fails.
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: own.url, breaker: { failures: 1000, cooldown: '1s' } } } })
  await own.stop()
  const warnings = (): Array<Record<string, unknown>> => gw.logLines.map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'store operation failed; serving from the origin' && l.op === 'lookup')
  for (let i = 0; i < 4; i++) t.equal((await gw.get(`/down-${i}`)).status, 200, 'served from the origin')
  t.equal(warnings().length, 1, 'one line for four failed lookups within a second')
  gw.clock.advance(1001)
  await gw.get('/down-later')
  t.equal(warnings().length, 2)
  // A request may look twice (a second look after a failure), so at least the other three.
  t.ok(Number(warnings()[1]?.suppressed) >= 3, 'the next line says how many failures went unlogged')
})
