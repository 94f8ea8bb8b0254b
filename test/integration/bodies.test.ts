// Bodies: stored only when complete and within maxObjectSize; streamed through otherwise; a
// body cut short by the origin reaches the client as an error and is never stored.
import t from 'tap'
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { request } from 'undici'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `bodies${++prefixes}:` } } })
}

/** GET returning the raw bytes. */
async function getBytes (gw: GatewayHandle, path: string): Promise<{ status: number, cacheStatus: string, body: Buffer }> {
  const res = await request(gw.url + path)
  const body = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, cacheStatus: String(res.headers['cache-status']), body }
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('a body over maxObjectSize streams through complete and is not stored', async (t) => {
      const big = Buffer.alloc(4096, 'x')
      const origin = await startOrigin(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': big.length, 'cache-control': 'max-age=600' })
        res.end(big)
      })
      const gw = await gateway(t, kind, { config: { cache: { maxObjectSize: '1KiB' }, routes: [{ origin: origin.url }] } })
      const first = await getBytes(gw, '/big')
      t.equal(first.status, 200)
      t.ok(first.body.equals(big), 'the whole body arrived')
      t.equal(first.cacheStatus, 'cachegate; fwd=uri-miss; fwd-status=200; detail=too-large')
      await gw.settled()
      const second = await getBytes(gw, '/big')
      t.ok(second.body.equals(big))
      t.notMatch(second.cacheStatus, /hit/)
      t.equal(origin.count('/big'), 2)
    })

    t.test('a chunked body that outgrows maxObjectSize streams through complete and is not stored', async (t) => {
      const part = Buffer.alloc(1000, 'y')
      const origin = await startOrigin(t, async (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' })
        for (let i = 0; i < 4; i++) res.write(part)
        res.end()
      })
      const gw = await gateway(t, kind, { config: { cache: { maxObjectSize: '1KiB' }, routes: [{ origin: origin.url }] } })
      const first = await getBytes(gw, '/chunked')
      t.equal(first.body.length, 4000)
      await gw.settled()
      const second = await getBytes(gw, '/chunked')
      t.equal(second.body.length, 4000)
      t.notMatch(second.cacheStatus, /hit/)
      t.equal(origin.count('/chunked'), 2)
    })

    t.test('a body cut short by the origin fails at the client and is not stored', async (t) => {
      const origin = await startOrigin(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100, 'cache-control': 'max-age=600' })
        res.write(Buffer.alloc(50, 'z'), () => { res.socket?.destroy() })
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await t.rejects(gw.get('/short'), 'the client sees an aborted response')
      await gw.settled()
      await t.rejects(gw.get('/short'), 'still not served from the cache')
      t.equal(origin.count('/short'), 2, 'the second request reached the origin')
    })

    t.test('a 2 MiB binary body arrives byte-exact on the miss and on the hit', async (t) => {
      const body = randomBytes(2 * 1024 * 1024)
      const origin = await startOrigin(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'cache-control': 'max-age=600' })
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const miss = await getBytes(gw, '/blob')
      t.equal(miss.body.length, body.length)
      t.ok(miss.body.equals(body), 'miss is byte-exact')
      await gw.settled()
      const hit = await getBytes(gw, '/blob')
      t.match(hit.cacheStatus, /^cachegate; hit/)
      t.ok(hit.body.equals(body), 'hit is byte-exact')
      t.equal(origin.count('/blob'), 1)
    })
  })
}

behaviours('memory')
behaviours('redis')
