/**
 * Soak: unique uncacheable URLs (the hit-for-miss map, the decision log, the fast path's key
 * cache and the header caches each gain one record per URL) must leave every per-key
 * structure within its bounds in entries and bytes, on both stores. Sizes are asserted, not
 * process memory: the bounds are what keeps memory flat.
 */
import t from 'tap'
import type { Test } from 'tap'
import { Agent, request } from 'undici'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

const redis = await startRedis(t)

/** Long paths reach the byte bounds long before the entry bounds (6,000 characters of URL per request). */
const PADDING = 'p'.repeat(6000)
const URLS = 1000

async function soak (t: Test, kind: 'memory' | 'redis'): Promise<GatewayHandle> {
  const origin = await startOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
    res.end('uncacheable')
  })
  const gw = await withGateway(t, {
    config: {
      routes: [{ path: '/', origin: origin.url }],
      ...(kind === 'redis' ? { redis: { url: redis.url, keyPrefix: 'soak:' } } : {})
    }
  })
  const agent = new Agent({ connections: 16 })
  t.teardown(async () => await agent.close())
  let next = 0
  let answered = 0
  const worker = async (): Promise<void> => {
    while (next < URLS) {
      const i = next++
      const res = await request(`${gw.url}/u/${i}/${PADDING}`, { dispatcher: agent })
      await res.body.text()
      if (res.statusCode === 200) answered++
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  await gw.settled()
  t.equal(answered, URLS, 'every request was answered by the origin')
  return gw
}

for (const kind of ['memory', 'redis'] as const) {
  t.test(`on the ${kind} store, ${URLS} unique uncacheable URLs leave every per-key structure within its bounds`, async (t) => {
    const gw = await soak(t, kind)
    const memory = gw.gateway.memory()
    for (const [name, s] of Object.entries(memory)) {
      t.ok(s.entries <= s.maxEntries, `${name}: ${s.entries} entries within ${s.maxEntries}`)
      t.ok(s.bytes <= s.maxBytes, `${name}: ${s.bytes} bytes within ${s.maxBytes}`)
    }
    const hfm = memory.hitForMiss
    t.ok(hfm !== undefined && hfm.evictions > 0, 'the hit-for-miss map reached its byte bound and evicted its oldest keys')
    t.ok(hfm !== undefined && hfm.entries < URLS, 'the hit-for-miss map holds fewer records than URLs seen')
    t.ok((memory.fastPathKeys?.entries ?? Infinity) < URLS, 'the fast path key cache holds fewer keys than URLs seen')
  })
}
