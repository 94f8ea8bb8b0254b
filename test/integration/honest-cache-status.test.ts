/**
 * Honest Cache-Status: `stored` is not claimed while the store is known to be failing. A write
 * happens after the headers went out, so the response whose write fails cannot know it; every
 * later one can, until a write succeeds again. A failed write is counted and logged.
 */
import t from 'tap'
import { request } from 'undici'
import { withGateway } from '../helpers/gateway.ts'
import { json, startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

const redis = await startRedis(t)

t.test('while Redis refuses writes (full, noeviction) no response claims stored; the failures are counted and logged', async (t) => {
  const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'public, max-age=60' }))
  const gw = await withGateway(t, { config: { routes: [{ name: 'api', origin: origin.url }], redis: { url: redis.url, keyPrefix: 'honest:', commandTimeout: '2s', writeTimeout: '2s' } } })
  const admin = redis.client()
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.config('SET', 'maxmemory', '1')
  t.teardown(async () => { await admin.config('SET', 'maxmemory', '0') })

  const first = await gw.get('/a')
  t.equal(first.status, 200)
  await gw.settled()
  const second = await gw.get('/b')
  t.equal(second.status, 200, 'the client is still answered from the origin')
  t.notMatch(second.header('cache-status') ?? '', /stored/, 'the last write failed: not claimed')
  await gw.settled()
  t.notMatch((await gw.get('/a')).header('cache-status') ?? '', /hit/, 'indeed nothing was stored')

  const metrics = await (await request(`${gw.adminUrl}/metrics`)).body.text()
  const failed = Number(/^cachegate_store_errors_total\{op="put"\} (\d+)/m.exec(metrics)?.[1] ?? 0)
  t.ok(failed >= 2, `failed writes are counted (${failed})`)
  const warn = gw.logLines.map((l) => JSON.parse(l) as { msg: string, op?: string, url?: string }).find((l) => l.op === 'put')
  t.match(warn, { msg: /could not store/ }, 'and logged as a failed write, not as "serving from the origin"')

  await admin.config('SET', 'maxmemory', '0')
  const recovering = await gw.get('/c')
  t.notMatch(recovering.header('cache-status') ?? '', /stored/, 'the first write after the failures is not claimed either')
  await gw.settled()
  t.match((await gw.get('/c')).header('cache-status') ?? '', /hit/, 'but it was stored')
  const healthy = await gw.get('/d')
  t.match(healthy.header('cache-status') ?? '', /; stored/, 'once a write succeeded, stored is claimed again')
})

t.test('a 500 passed through while revalidating a stale entry is logged as an error, not as revalidated', async (t) => {
  let served = 0
  const origin = await startOrigin(t, (_req, res) => {
    if (served++ === 0) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=1', etag: '"v1"' })
      res.end('{"v":1}')
      return
    }
    res.writeHead(500, { 'content-type': 'application/json' })
    res.end('{"origin":"down"}')
  })
  const gw = await withGateway(t, { config: { routes: [{ name: 'api', origin: origin.url }] } })
  t.equal((await gw.get('/r')).status, 200)
  await gw.settled()
  gw.clock.advance(5000)
  const res = await gw.get('/r')
  t.equal(res.status, 500, 'no stale-if-error: the origin\'s 500 is passed through')
  await gw.settled()
  const last = gw.outcomes.at(-1)
  t.match(last, { outcome: 'error', status: 500, originStatus: 500 })
  const line = gw.logLines.map((l) => JSON.parse(l) as { msg: string, outcome?: string, status?: number }).filter((l) => l.msg === 'request').at(-1)
  t.match(line, { outcome: 'error', status: 500 })
})
