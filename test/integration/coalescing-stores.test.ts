// Coalescing inside one instance, on both stores: a burst of misses for one cold key is one
// origin request, and a response that may not be shared is never handed to a waiter.
// (coalescing.test.ts covers bursts across instances and the Vary and coalesceWait cases.)
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
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `coalesce${++prefixes}:` } } })
}

/** The origin's own slowness (its setTimeout, not a test sleep) keeps the burst in flight. */
const ORIGIN_DELAY_MS = 200
const BODY = 'k'.repeat(64 * 1024)

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('50 concurrent requests for one cold key reach the origin once and all get the whole body', async (t) => {
      const origin = await startOrigin(t, (_req, res) => {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length, 'cache-control': 'max-age=60' })
          res.end(BODY)
        }, ORIGIN_DELAY_MS)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const replies = await Promise.all(Array.from({ length: 50 }, async () => await gw.get('/cold')))
      t.equal(origin.count('/cold'), 1, 'exactly one origin request')
      t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the full body')
      const statuses = replies.map((r) => r.header('cache-status') ?? '')
      t.equal(statuses.filter((s) => s === 'cachegate; fwd=uri-miss; fwd-status=200; stored').length, 1, 'one leader')
      const waiters = statuses.filter((s) => !s.endsWith('; stored'))
      t.equal(waiters.length, 49)
      t.ok(waiters.every((s) => /; collapsed/.test(s)), 'every waiter says it was collapsed')
      await gw.settled()
      t.match((await gw.get('/cold')).header('cache-status'), /^cachegate; hit/)
      t.equal(origin.count('/cold'), 1)
    })

    t.test('an uncacheable (private) response is not given to waiters: each goes to the origin', async (t) => {
      const origin = await startOrigin(t, (_req, res, n) => {
        setTimeout(() => {
          const body = `user-${n}`
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': 'private' })
          res.end(body)
        }, ORIGIN_DELAY_MS)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const replies = await Promise.all(Array.from({ length: 10 }, async () => await gw.get('/me')))
      t.equal(origin.count('/me'), 10, 'every client went to the origin')
      t.equal(new Set(replies.map((r) => r.body)).size, 10, 'each client got its own response')
      t.notOk(replies.some((r) => /collapsed/.test(r.header('cache-status') ?? '')))
      t.ok(replies.every((r) => /detail=private$/.test(r.header('cache-status') ?? '')))
    })
  })
}

behaviours('memory')
behaviours('redis')
