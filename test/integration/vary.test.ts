// Vary (RFC 9111 §4.1): variants of one URL side by side, selected by normalized request
// values; a changed Vary replaces the old variants; the per-URL variant cap drops the oldest.
import t from 'tap'
import type { Test } from 'tap'
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `vary${++prefixes}:` } } })
}

/** A GET through node:http, which can send an empty header value. */
async function rawGet (base: string, path: string, headers: Record<string, string>): Promise<{ cacheStatus: string, body: string }> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ cacheStatus: String(res.headers['cache-status']), body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** Answers `ae=<Accept-Encoding> #<n>` with the Vary the test chooses per origin request. */
function negotiating (vary: (n: number) => string) {
  return (req: IncomingMessage, res: ServerResponse, n: number): void => {
    const body = `ae=${req.headers['accept-encoding'] ?? '(absent)'} #${n}`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=600', vary: vary(n) })
    res.end(body)
  }
}

async function isHit (gw: GatewayHandle, path: string, headers: Record<string, string>): Promise<{ hit: boolean, body: string }> {
  const res = await gw.get(path, headers)
  await gw.settled()
  return { hit: /^cachegate; hit/.test(res.header('cache-status') ?? ''), body: res.body }
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('Vary: Accept-Encoding keeps the gzip and identity variants side by side', async (t) => {
      const origin = await startOrigin(t, negotiating(() => 'Accept-Encoding'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const gzip = await gw.get('/v', { 'accept-encoding': 'gzip' })
      t.equal(gzip.header('cache-status'), 'cachegate; fwd=uri-miss; fwd-status=200; stored')
      await gw.settled()
      const identity = await gw.get('/v')
      t.equal(identity.header('cache-status'), 'cachegate; fwd=vary-miss; fwd-status=200; stored')
      t.equal(identity.body, 'ae=(absent) #2')
      await gw.settled()
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'gzip' }), { hit: true, body: 'ae=gzip #1' })
      t.same(await isHit(gw, '/v', {}), { hit: true, body: 'ae=(absent) #2' })
      t.equal(gzip.header('vary'), 'Accept-Encoding', 'Vary goes downstream')
      t.equal(origin.count(), 2)
    })

    t.test('equivalent Accept-Encoding values select the same variant; an empty one differs from an absent one', async (t) => {
      const origin = await startOrigin(t, negotiating(() => 'Accept-Encoding'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'gzip, br' }), { hit: false, body: 'ae=gzip, br #1' })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'br,gzip' }), { hit: true, body: 'ae=gzip, br #1' })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'BR ,  GZIP;q=1' }), { hit: true, body: 'ae=gzip, br #1' })
      t.same(await isHit(gw, '/v', {}), { hit: false, body: 'ae=(absent) #2' })
      const empty = await rawGet(gw.url, '/v', { 'accept-encoding': '' })
      t.match(empty.cacheStatus, /^cachegate; fwd=vary-miss/)
      t.equal(empty.body, 'ae= #3')
      await gw.settled()
      const emptyAgain = await rawGet(gw.url, '/v', { 'accept-encoding': '' })
      t.match(emptyAgain.cacheStatus, /^cachegate; hit/)
      t.equal(emptyAgain.body, 'ae= #3')
      t.same(await isHit(gw, '/v', {}), { hit: true, body: 'ae=(absent) #2' })
      t.equal(origin.count(), 3)
    })

    t.test('a changed Vary from the origin replaces the old variants', async (t) => {
      const origin = await startOrigin(t, negotiating((n) => n === 1 ? 'Accept-Encoding' : 'Accept-Language'))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'gzip' }), { hit: false, body: 'ae=gzip #1' })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'br' }), { hit: false, body: 'ae=br #2' }, 'now varies on Accept-Language')
      // Under the new Vary a request without Accept-Language selects response #2, whatever its
      // Accept-Encoding: the gzip variant stored under the old Vary is gone.
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'gzip' }), { hit: true, body: 'ae=br #2' })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'gzip', 'accept-language': 'fr' }), { hit: false, body: 'ae=gzip #3' })
      t.equal(origin.count(), 3)
    })

    t.test('the per-URL variant cap drops the least recently stored variant', async (t) => {
      const origin = await startOrigin(t, negotiating(() => 'Accept-Encoding'))
      const gw = await gateway(t, kind, { config: { cache: { maxVariants: 2 }, routes: [{ origin: origin.url }] } })
      for (const [i, ae] of ['gzip', 'br', 'zstd'].entries()) {
        t.same(await isHit(gw, '/v', { 'accept-encoding': ae }), { hit: false, body: `ae=${ae} #${i + 1}` })
      }
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'zstd' }), { hit: true, body: 'ae=zstd #3' })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'br' }), { hit: true, body: 'ae=br #2' })
      t.same(await isHit(gw, '/v', { 'accept-encoding': 'gzip' }), { hit: false, body: 'ae=gzip #4' }, 'the oldest was dropped')
      t.equal(origin.count(), 4)
    })
  })
}

behaviours('memory')
behaviours('redis')
