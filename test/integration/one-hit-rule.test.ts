/**
 * One hit rule for both paths (issue 11): the fast path (http/fast-hit.ts, answering plain
 * fresh hits before fastify) and the full path (fastify and the lifecycle) must answer a warm
 * entry with the same bytes, and the fast path must answer nothing the full path would answer
 * differently. Two gateways share one Redis (same key prefix) and one manual clock: one with the
 * fast path, one without. Each request is sent to both over a raw socket and the responses are
 * compared byte for byte, less the Date line.
 */
import t from 'tap'
import type { Test } from 'tap'
import { connect } from 'node:net'
import { ManualClock } from '../../src/clock.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

const redis = await startRedis(t)
let prefixes = 0

const BODY = JSON.stringify({ id: 1, name: 'Kettle', tags: ['a', 'b'] })

/** The whole response to a raw request, as bytes read until the server closes, without its Date line. */
async function exchange (gw: GatewayHandle, head: string): Promise<string> {
  const { port } = new URL(gw.url)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(head))
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1').replace(/\r\ndate: [^\r]*/i, '')))
    socket.on('error', reject)
  })
}

function request (method: string, path: string, fields: string[] = ['Host: shop.example']): string {
  return `${method} ${path} HTTP/1.1\r\n${[...fields, 'Connection: close'].join('\r\n')}\r\n\r\n`
}

/** A fast-path gateway and a full-path-only gateway on one Redis, one clock and one origin. */
async function pair (t: Test, route: Record<string, unknown> = {}): Promise<{ fast: GatewayHandle, full: GatewayHandle, originCount: () => number }> {
  const origin = await startOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY), 'cache-control': 'max-age=600', etag: '"v1"', 'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT', 'surrogate-key': 'p1 all' })
    res.end(BODY)
  })
  const clock = new ManualClock()
  const config = { routes: [{ origin: origin.url, ...route }], redis: { url: redis.url, keyPrefix: `hit${++prefixes}:` } }
  const fast = await withGateway(t, { config, clock, random: () => 1 })
  const full = await withGateway(t, { config, clock, random: () => 1, fastPath: false })
  return { fast, full, originCount: () => origin.count() }
}

async function warm (gw: GatewayHandle, path: string, fields?: string[]): Promise<void> {
  await exchange(gw, request('GET', path, fields))
  await gw.settled()
}

t.test('a plain fresh hit is the same bytes from the fast path and the full path', async (t) => {
  const { fast, full, originCount } = await pair(t)
  await warm(fast, '/p')
  fast.clock.advance(2500)
  for (const method of ['GET', 'HEAD']) {
    const a = await exchange(fast, request(method, '/p'))
    const b = await exchange(full, request(method, '/p'))
    t.match(a, /^HTTP\/1\.1 200 OK\r\n/, `${method}: a hit`)
    t.match(a, /\r\ncache-status: cachegate; hit; ttl=597\r\n/i)
    t.match(a, /\r\nage: 2\r\n/i)
    t.equal(a, b, `${method}: byte for byte`)
  }
  t.equal(originCount(), 1, 'both answered from the one stored entry')
  t.ok(fast.outcomes.some((o) => o.outcome === 'hit') && full.outcomes.some((o) => o.outcome === 'hit'), 'each counted a hit')
})

t.test('each request field the fast path leaves alone gets the full path\'s answer from both gateways', async (t) => {
  // A request may refetch and store: each case gets its own pair, warmed the same way.
  const cases: Array<[string, string[]]> = [
    ['Cache-Control: max-age=0', ['Cache-Control: max-age=0']],
    ['Cache-Control: max-stale', ['Cache-Control: max-stale']],
    ['Pragma: no-cache', ['Pragma: no-cache']],
    ['Authorization', ['Authorization: Bearer abc']],
    ['If-None-Match matching', ['If-None-Match: "v1"']],
    ['If-None-Match not matching', ['If-None-Match: "v0"']],
    ['If-Modified-Since', ['If-Modified-Since: Fri, 02 Jan 2026 00:00:00 GMT']],
    ['Range', ['Range: bytes=0-3']],
    ['If-Range with Range', ['If-Range: "v1"', 'Range: bytes=2-5']],
    ['If-Match', ['If-Match: "v1"']],
    ['If-Unmodified-Since', ['If-Unmodified-Since: Fri, 02 Jan 2026 00:00:00 GMT']]
  ]
  for (const [name, extra] of cases) {
    const fields = ['Host: shop.example', ...extra]
    const answers: string[] = []
    for (const side of ['fast', 'full'] as const) {
      const gateways = await pair(t)
      await warm(gateways.fast, '/p')
      gateways.fast.clock.advance(1000)
      answers.push(await exchange(gateways[side], request('GET', '/p', fields)))
      await gateways[side].settled()
    }
    t.equal(answers[0], answers[1], name)
  }
})

t.test('several Host fields on a warm key get the same 400 from both paths, never a hit', async (t) => {
  const { fast, full } = await pair(t)
  await warm(fast, '/p')
  const fields = ['Host: shop.example', 'Host: other.example']
  const a = await exchange(fast, request('GET', '/p', fields))
  const b = await exchange(full, request('GET', '/p', fields))
  t.match(a, /^HTTP\/1\.1 400 /)
  t.equal(a, b)
})

t.test('route options the fast path leaves alone get the same answer from both gateways', async (t) => {
  const options: Array<[string, Record<string, unknown>, string[]]> = [
    ['key headers', { key: { headers: ['x-tenant'] } }, ['Host: shop.example', 'X-Tenant: acme']],
    ['key cookies', { key: { cookies: ['currency'] } }, ['Host: shop.example', 'Cookie: currency=EUR']],
    ['refresh-ahead', { refreshAhead: true }, ['Host: shop.example']],
    ['caching disabled', { enabled: false }, ['Host: shop.example']]
  ]
  for (const [name, route, fields] of options) {
    const answers: string[] = []
    for (const side of ['fast', 'full'] as const) {
      const gateways = await pair(t, route)
      await warm(gateways.fast, '/p', fields)
      gateways.fast.clock.advance(1000)
      answers.push(await exchange(gateways[side], request('GET', '/p', fields)))
      await gateways[side].settled()
    }
    t.equal(answers[0], answers[1], name)
  }
})

t.test('the fast path answers one path on two hosts each with its own entry', async (t) => {
  // The fast path caches key normalization by target first; the host must still decide the key.
  const origin = await startOrigin(t, (req, res) => {
    const body = `page for ${String(req.headers['x-forwarded-host'])}`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=600' })
    res.end(body)
  })
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }] }, clock: new ManualClock(), random: () => 1 })
  const hosts = ['a.example', 'b.example', 'A.example:80']
  const bodyOf = (answer: string): string => answer.slice(answer.indexOf('\r\n\r\n') + 4)
  const first = new Map<string, string>()
  for (const host of hosts) first.set(host, bodyOf(await exchange(gw, request('GET', '/same', [`Host: ${host}`]))))
  await gw.settled()
  t.equal(first.get('a.example'), 'page for a.example')
  t.equal(first.get('b.example'), 'page for b.example')
  const before = origin.count()
  for (let round = 0; round < 3; round++) {
    for (const host of hosts) {
      const answer = await exchange(gw, request('GET', '/same', [`Host: ${host}`]))
      t.match(answer, /cache-status: cachegate; hit/i, `${host}: a hit`)
      t.equal(bodyOf(answer), first.get(host), `${host}: its own entry, never another host's`)
    }
  }
  t.equal(origin.count(), before, 'all answered from the cache')
})
