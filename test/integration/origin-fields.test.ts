// How the gateway reads the origin's Age and targeted cache-control fields, on both stores:
// an invalid Age makes the stored response stale (RFC 9111 §4.2.1, §5.1); a targeted field
// that is not a valid RFC 8941 Dictionary is ignored (RFC 9213 §2.1); Surrogate-Control is honoured.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `fields${++prefixes}:` } } })
}

/** An origin answering every path with the given headers and a body naming the request count. */
async function originWith (t: Test, headers: Record<string, string | string[]>): Promise<Awaited<ReturnType<typeof startOrigin>>> {
  return await startOrigin(t, (_req, res, n) => {
    const body = `#${n}`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, ...headers })
    res.end(body)
  })
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    const invalidAges: Array<[string, string | string[]]> = [
      ['a suffix after a list comma', '7200,0'],
      ['a list of zeros', '0, 0'],
      ['two field lines', ['0', '0']],
      ['a parameter', '0;foo=bar'],
      ['a non-numeric value', 'abc'],
      ['a negative value', '-7200'],
      ['a fraction', '1.0']
    ]
    for (const [name, age] of invalidAges) {
      t.test(`an Age with ${name} makes a max-age=3600 response stale: the next request goes to the origin`, async (t) => {
        const origin = await originWith(t, { 'cache-control': 'max-age=3600', age })
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
        t.equal((await gw.get('/a')).body, '#1')
        await gw.settled()
        const second = await gw.get('/a')
        t.equal(second.body, '#2', 'not reused')
        t.equal(origin.count('/a'), 2)
      })
    }

    for (const value of ['max-age=3.5', 'max-age="0"', 'max-age=-1', 'no-store=1']) {
      t.test(`a CDN-Cache-Control of the wrong type (${value}) is ignored: Cache-Control max-age governs`, async (t) => {
        const origin = await originWith(t, { 'cdn-cache-control': value, 'cache-control': 'max-age=600' })
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
        await gw.get('/a')
        await gw.settled()
        t.equal((await gw.get('/a')).body, '#1', 'stored for the max-age of Cache-Control')
      })
    }

    t.test('a CDN-Cache-Control that is not a Dictionary is ignored: Cache-Control max-age governs', async (t) => {
      const origin = await originWith(t, { 'cdn-cache-control': 'no-store, Max-Age=0', 'cache-control': 'max-age=600' })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/a')
      await gw.settled()
      const second = await gw.get('/a')
      t.equal(second.body, '#1', 'stored under Cache-Control')
      t.equal(second.header('cdn-cache-control'), 'no-store, Max-Age=0', 'still passed on to a CDN in front')
    })

    t.test('Surrogate-Control max-age stores a response Cache-Control forbids, and is not sent on', async (t) => {
      const origin = await originWith(t, { 'surrogate-control': 'max-age=600', 'cache-control': 'no-store' })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await gw.get('/a')
      t.equal(first.header('surrogate-control'), undefined, 'consumed by this cache')
      t.equal(first.header('cache-control'), 'no-store', 'Cache-Control reaches the client unchanged')
      await gw.settled()
      const second = await gw.get('/a')
      t.equal(second.body, '#1')
      t.match(second.header('cache-status'), /^cachegate; hit/)
    })

    t.test('Surrogate-Control targeted at another device is ignored', async (t) => {
      const origin = await originWith(t, { 'surrogate-control': 'max-age=600;other-cdn', 'cache-control': 'no-store' })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/a')
      await gw.settled()
      t.equal((await gw.get('/a')).body, '#2', 'not stored')
    })

    t.test('Surrogate-Control no-store wins over Cache-Control max-age', async (t) => {
      const origin = await originWith(t, { 'surrogate-control': 'no-store', 'cache-control': 'max-age=600' })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/a')
      await gw.settled()
      t.equal((await gw.get('/a')).body, '#2', 'not stored')
    })

    t.test('a valid Age below max-age is reused, and counts toward the Age sent', async (t) => {
      const origin = await originWith(t, { 'cache-control': 'max-age=3600', age: '100' })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/a')
      await gw.settled()
      gw.clock.advance(5000)
      const second = await gw.get('/a')
      t.equal(second.body, '#1')
      t.equal(second.header('age'), '105')
    })
  })
}

behaviours('memory')
behaviours('redis')
