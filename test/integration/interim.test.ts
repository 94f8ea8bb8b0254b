// 103 Early Hints from the origin reach the client on a miss (RFC 8297), Link fields only;
// a hit answers at once without them. On both stores.
import t from 'tap'
import type { Test } from 'tap'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `interim${++prefixes}:` } } })
}

interface Exchange { informational: Array<{ status: number, headers: IncomingHttpHeaders }>, status: number, body: string }

/** A GET through node:http, recording every 1xx the client receives before the final answer. */
async function get (base: string, path: string): Promise<Exchange> {
  const { hostname, port } = new URL(base)
  const informational: Exchange['informational'] = []
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ informational, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('information', (info) => informational.push({ status: info.statusCode, headers: info.headers }))
    req.on('error', reject)
    req.end()
  })
}

const LINK = '</style.css>; rel=preload; as=style'

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('a miss relays the origin\'s 103 Early Hints (Link only), then the response, which is stored', async (t) => {
      const origin = await startOrigin(t, (_req, res) => {
        res.writeEarlyHints({ link: LINK, 'x-internal': 'secret' }, () => {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 4, 'cache-control': 'max-age=600', link: LINK })
          res.end('page')
        })
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await get(gw.url, '/page')
      t.equal(first.status, 200)
      t.equal(first.body, 'page')
      t.equal(first.informational.length, 1, 'one interim response')
      t.equal(first.informational[0]?.status, 103)
      t.equal(first.informational[0]?.headers.link, LINK)
      t.equal(first.informational[0]?.headers['x-internal'], undefined, 'only Link is relayed')
      await gw.settled()
      const hit = await get(gw.url, '/page')
      t.equal(hit.body, 'page')
      t.same(hit.informational, [], 'a hit has nothing to hint')
      t.equal(origin.count('/page'), 1)
    })

    t.test('an Early Hints without a valid Link is dropped, and the response still arrives', async (t) => {
      const origin = await startOrigin(t, (_req, res) => {
        // Node refuses to write an invalid Link itself: write the interim response raw.
        res.socket?.write('HTTP/1.1 103 Early Hints\r\nLink: not a link\r\n\r\n')
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 })
        res.end('ok')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const res = await get(gw.url, '/x')
      t.equal(res.status, 200)
      t.equal(res.body, 'ok')
      t.same(res.informational, [])
    })
  })
}

behaviours('memory')
behaviours('redis')
