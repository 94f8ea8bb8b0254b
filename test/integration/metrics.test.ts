/**
 * GET /metrics on the admin listener: the numbers move as requests hit and miss, with the
 * names and labels deploy/grafana and deploy/prometheus read.
 */
import t from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { withGateway } from '../helpers/gateway.ts'
import { json, startOrigin } from '../helpers/origin.ts'
import { freePort, startRedis } from '../helpers/redis.ts'
import { scrape } from '../helpers/prometheus.ts'

const redis = await startRedis(t)

t.test('requests are counted by route and outcome, and origin requests by route and status', async (t) => {
  const origin = await startOrigin(t, (req, res) => {
    if (req.method === 'POST') {
      res.writeHead(201, { 'content-length': 0 })
      res.end()
      return
    }
    const headers = req.url === '/private' ? { 'cache-control': 'no-store' } : { 'cache-control': 'max-age=60' }
    json({ url: req.url }, headers)(req, res, 0)
  })
  const gw = await withGateway(t, { config: { routes: [{ name: 'products', origin: origin.url }] } })

  const before = await scrape(gw.adminUrl)
  t.equal(before.sum('cachegate_requests_total'), 0, 'nothing counted before the first request')

  await gw.get('/products/1')
  await gw.settled()
  await gw.get('/products/1')
  await gw.get('/products/1')
  await gw.get('/private')
  await gw.request('/orders', { method: 'POST', body: '{}' })

  const m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_requests_total', { route: 'products', outcome: 'miss' }), 1)
  t.equal(m.sum('cachegate_requests_total', { route: 'products', outcome: 'hit' }), 2)
  t.equal(m.sum('cachegate_requests_total', { route: 'products', outcome: 'pass' }), 2, 'the no-store GET and the POST passed')
  t.equal(m.sum('cachegate_origin_requests_total', { route: 'products', status: '200' }), 2, 'the miss and the no-store GET')
  t.equal(m.sum('cachegate_origin_requests_total', { route: 'products', status: '201' }), 1, 'the POST went through to the origin')
  t.equal(m.sum('cachegate_origin_duration_seconds_count', { route: 'products' }), 3)
  t.equal(m.sum('cachegate_request_duration_seconds_count', { outcome: 'hit' }), 2, 'client latency is observed by outcome')
  t.equal(m.sum('cachegate_request_duration_seconds_count'), 5)
  t.ok(m.sum('cachegate_store_duration_seconds_count', { op: 'lookup' }) >= 4, 'store lookups are timed')
  t.equal(m.sum('cachegate_store_duration_seconds_count', { op: 'put' }), 1, 'one entry written')
  t.equal(m.sum('cachegate_store_entries'), 1, 'the memory store holds one entry')
  t.ok(m.sum('cachegate_store_bytes') > 0, 'and reports its bytes')
  t.equal(m.sum('cachegate_l1_bytes'), 0, 'no L1: 0 bytes')
  t.notOk(m.has('cachegate_redis_up'), 'no Redis, no connection gauge')

  const routes = new Set(m.samples.flatMap((s) => s.labels.route !== undefined ? [s.labels.route] : []))
  t.same([...routes], ['products'], 'the route label holds route names, never URLs')
})

t.test('an unknown host and an unreachable origin are counted as errors', async (t) => {
  const closed = await freePort()
  const gw = await withGateway(t, { config: { routes: [{ name: 'shop', host: 'shop.example', origin: `http://127.0.0.1:${closed}` }] } })
  t.equal((await gw.get('/x', { host: 'other.example' })).status, 404)
  t.equal((await gw.get('/x', { host: 'shop.example' })).status, 502)
  const m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_requests_total', { route: '(none)', outcome: 'error' }), 1, 'no route: route "(none)"')
  t.equal(m.sum('cachegate_requests_total', { route: 'shop', outcome: 'error' }), 1)
  t.equal(m.sum('cachegate_origin_requests_total', { route: 'shop', status: 'error' }), 1, 'no answer from the origin: status "error"')
})

t.test('requests collapsed onto another request\'s fetch are counted as coalesced waiters', async (t) => {
  let open!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  let arrived!: () => void
  const first = new Promise<void>((resolve) => { arrived = resolve })
  const origin = await startOrigin(t, async (req: IncomingMessage, res: ServerResponse) => {
    arrived()
    await gate
    json({ ok: true }, { 'cache-control': 'max-age=60' })(req, res, 0)
  })
  const gw = await withGateway(t, { config: { routes: [{ name: 'hot', origin: origin.url }] } })
  const all = Promise.all(Array.from({ length: 20 }, async () => await gw.get('/hot')))
  await first
  open()
  const replies = await all
  const collapsed = replies.filter((r) => /collapsed/.test(r.header('cache-status') ?? '')).length
  t.ok(collapsed > 0, 'some requests were collapsed')
  const m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_coalesced_waiters_total', { route: 'hot' }), collapsed, 'one per collapsed request')
  t.equal(origin.count(), 1)
})

t.test('background refreshes are counted as started, then succeeded or failed', async (t) => {
  const origin = await startOrigin(t, (req, res, n) => {
    if (n === 3) {
      res.writeHead(500, { 'content-length': 0 })
      res.end()
      return
    }
    json({ n }, { 'cache-control': 'max-age=10, stale-while-revalidate=60' })(req, res, n)
  })
  const gw = await withGateway(t, { config: { routes: [{ name: 'swr', origin: origin.url }] } })
  await gw.get('/a')
  await gw.settled()
  gw.clock.advance(20_000)
  t.match((await gw.get('/a')).header('cache-status'), /fwd=stale/, 'a stale hit starts a refresh')
  await gw.settled()
  let m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_refreshes_total', { route: 'swr', result: 'started' }), 1)
  t.equal(m.sum('cachegate_refreshes_total', { route: 'swr', result: 'succeeded' }), 1)

  gw.clock.advance(20_000)
  await gw.get('/a')
  await gw.settled()
  m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_refreshes_total', { route: 'swr', result: 'started' }), 2)
  t.equal(m.sum('cachegate_refreshes_total', { route: 'swr', result: 'failed' }), 1, 'the origin answered 500')
  t.equal(m.sum('cachegate_origin_requests_total', { route: 'swr', status: '500' }), 1, 'a refresh is an origin request too')
})

t.test('purges reported through metrics.purge are counted by kind with the entries they removed', async (t) => {
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }] } })
  gw.gateway.metrics.purge('tag', 3)
  gw.gateway.metrics.purge('tag', 0)
  gw.gateway.metrics.purge('url', 1)
  const m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_purges_total', { kind: 'tag' }), 2)
  t.equal(m.sum('cachegate_purged_entries_total', { kind: 'tag' }), 3)
  t.equal(m.sum('cachegate_purges_total', { kind: 'url' }), 1)
  t.equal(m.sum('cachegate_purged_entries_total', { kind: 'url' }), 1)
})

t.test('with Redis down, failed store operations are counted and cachegate_redis_up reads 0, and 1 again once it is back', async (t) => {
  const own = await startRedis(t)
  const origin = await startOrigin(t, json({ ok: true }, { 'cache-control': 'max-age=60' }))
  const gw = await withGateway(t, { config: { routes: [{ name: 'api', origin: origin.url }], redis: { url: own.url } } })
  let m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_redis_up'), 1)
  t.notOk(m.has('cachegate_store_entries'), 'the Redis store has no in-process size to report')

  await own.stop()
  t.equal((await gw.get('/a')).status, 200, 'served from the origin')
  m = await scrape(gw.adminUrl)
  t.equal(m.sum('cachegate_redis_up'), 0)
  t.ok(m.sum('cachegate_store_errors_total', { op: 'lookup' }) >= 1, 'the failed lookup is counted')
  t.equal(m.sum('cachegate_requests_total', { route: 'api', outcome: 'miss' }), 1, 'and the request is a miss')

  await own.start()
  for (let i = 0; i < 100 && m.sum('cachegate_redis_up') !== 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    m = await scrape(gw.adminUrl)
  }
  t.equal(m.sum('cachegate_redis_up'), 1, 'reconnected')
})

t.test('two gateways in one process keep separate counts', async (t) => {
  const origin = await startOrigin(t, json({ ok: true }, { 'cache-control': 'max-age=60' }))
  const a = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: redis.url, keyPrefix: 'm-a:' } } })
  const b = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: redis.url, keyPrefix: 'm-b:' } } })
  await a.get('/x')
  t.equal((await scrape(a.adminUrl)).sum('cachegate_requests_total'), 1)
  t.equal((await scrape(b.adminUrl)).sum('cachegate_requests_total'), 0)
})
