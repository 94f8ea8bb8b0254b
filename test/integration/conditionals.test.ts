// A client's own conditional and range requests answered from a stored 200 (RFC 9110 §13,
// §14) without asking the origin.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `conditionals${++prefixes}:` } } })
}

const BODY = '0123456789abcdefghij'
const LAST_MODIFIED = 'Wed, 01 Oct 2025 10:00:00 GMT'

/** A gateway whose origin serves BODY with an ETag and Last-Modified, already stored. */
async function stored (t: Test, kind: StoreKind): Promise<{ gw: GatewayHandle, count: () => number }> {
  const origin = await startOrigin(t, (_req, res) => {
    res.writeHead(200, {
      'content-type': 'text/plain',
      'content-length': BODY.length,
      etag: '"rev-7"',
      'last-modified': LAST_MODIFIED,
      date: 'Thu, 01 Jan 2026 00:00:00 GMT',
      'cache-control': 'max-age=600'
    })
    res.end(BODY)
  })
  const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
  const first = await gw.get('/doc')
  t.equal(first.status, 200)
  await gw.settled()
  return { gw, count: () => origin.count() }
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('If-None-Match with the stored ETag is a 304 from the cache', async (t) => {
      const { gw, count } = await stored(t, kind)
      const res = await gw.get('/doc', { 'if-none-match': '"other", "rev-7"' })
      t.equal(res.status, 304)
      t.equal(res.body, '')
      t.equal(res.header('etag'), '"rev-7"')
      t.equal(res.header('cache-control'), 'max-age=600')
      t.match(res.header('cache-status'), /^cachegate; hit/)
      t.equal(count(), 1, 'no origin request')
      const other = await gw.get('/doc', { 'if-none-match': '"other"' })
      t.equal(other.status, 200)
      t.equal(other.body, BODY)
      t.equal(count(), 1)
    })

    t.test('If-Modified-Since at or after Last-Modified is a 304 from the cache, before it a 200', async (t) => {
      const { gw, count } = await stored(t, kind)
      const same = await gw.get('/doc', { 'if-modified-since': LAST_MODIFIED })
      t.equal(same.status, 304)
      t.equal(same.header('last-modified'), LAST_MODIFIED)
      const earlier = await gw.get('/doc', { 'if-modified-since': 'Tue, 30 Sep 2025 10:00:00 GMT' })
      t.equal(earlier.status, 200)
      t.equal(earlier.body, BODY)
      t.equal(count(), 1)
    })

    t.test('Range bytes=0-4 on a stored 200 is a 206 with Content-Range and those bytes', async (t) => {
      const { gw, count } = await stored(t, kind)
      const res = await gw.get('/doc', { range: 'bytes=0-4' })
      t.equal(res.status, 206)
      t.equal(res.body, '01234')
      t.equal(res.header('content-range'), `bytes 0-4/${BODY.length}`)
      t.equal(res.header('content-length'), '5')
      t.match(res.header('cache-status'), /^cachegate; hit/)
      const suffix = await gw.get('/doc', { range: 'bytes=-3' })
      t.equal(suffix.status, 206)
      t.equal(suffix.body, 'hij')
      t.equal(suffix.header('content-range'), `bytes 17-19/${BODY.length}`)
      t.equal(count(), 1)
    })

    t.test('If-Range with the stored ETag applies the range; with another ETag the full body is sent', async (t) => {
      const { gw, count } = await stored(t, kind)
      const matching = await gw.get('/doc', { range: 'bytes=5-9', 'if-range': '"rev-7"' })
      t.equal(matching.status, 206)
      t.equal(matching.body, '56789')
      const other = await gw.get('/doc', { range: 'bytes=5-9', 'if-range': '"rev-6"' })
      t.equal(other.status, 200)
      t.equal(other.body, BODY)
      t.equal(other.header('content-range'), undefined)
      t.equal(count(), 1)
    })

    t.test('an unsatisfiable range is a 416 with the stored length', async (t) => {
      const { gw, count } = await stored(t, kind)
      const res = await gw.get('/doc', { range: 'bytes=100-' })
      t.equal(res.status, 416)
      t.equal(res.header('content-range'), `bytes */${BODY.length}`)
      t.equal(res.body, '')
      t.equal(count(), 1)
    })

    t.test('a client If-None-Match on a miss reaches the origin, and its 200 is answered 304 and stored', async (t) => {
      const origin = await startOrigin(t, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length, etag: '"rev-7"', 'cache-control': 'max-age=600' })
        res.end(BODY)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const res = await gw.get('/cold', { 'if-none-match': '"rev-7"' })
      t.equal(res.status, 304)
      // RFC 9111 §4.3.2 (conditional-miss.test.ts): an origin that ignores it answers 200, judged here.
      t.equal(origin.requests[0]?.headers['if-none-match'], '"rev-7"', 'the client\'s validator is forwarded on a miss')
      await gw.settled()
      const full = await gw.get('/cold')
      t.equal(full.status, 200)
      t.equal(full.body, BODY)
      t.match(full.header('cache-status'), /^cachegate; hit/, 'the full response was stored meanwhile')
      t.equal(origin.count(), 1)
    })
  })
}

behaviours('memory')
behaviours('redis')
