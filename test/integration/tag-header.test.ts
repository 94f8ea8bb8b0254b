/**
 * Route option tagHeader (issue 13): the entry's tags go downstream in the CDN's purge-tag
 * header, the same on a miss, a fast-path hit and a full-path hit, on both stores.
 */
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: 'memory' | 'redis', route: Record<string, unknown>): Promise<GatewayHandle> {
  return await withGateway(t, {
    config: {
      routes: [route],
      ...(kind === 'redis' ? { redis: { url: redis.url, keyPrefix: `taghdr${++prefixes}:`, commandTimeout: '2s' } } : {})
    }
  })
}

/** An origin labelling /p with Surrogate-Key and Cache-Tag, as Fastly- and Cloudflare-minded origins do. */
async function taggingOrigin (t: Test, headers: Record<string, string>): Promise<string> {
  const origin = await startOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', ...headers })
    res.end('tagged')
  })
  return origin.url
}

/** The answers of a miss, a plain hit (fast path) and a hit with a non-matching If-None-Match (full path). */
async function threeAnswers (gw: GatewayHandle, path: string): Promise<Array<{ how: string, status: string | undefined, headers: Record<string, string | string[] | undefined> }>> {
  const miss = await gw.get(path)
  await gw.settled()
  const fast = await gw.get(path)
  const full = await gw.get(path, { 'if-none-match': '"not-this-one"' })
  return [
    { how: 'miss', status: miss.header('cache-status'), headers: miss.headers },
    { how: 'fast-path hit', status: fast.header('cache-status'), headers: fast.headers },
    { how: 'full-path hit', status: full.header('cache-status'), headers: full.headers }
  ]
}

for (const kind of ['memory', 'redis'] as const) {
  t.test(`on the ${kind} store`, async (t) => {
    const cases = [
      ['surrogate-key', 'product-1 products category:7'],
      ['cache-tag', 'product-1,products,category:7'],
      ['edge-cache-tag', 'product-1,products']
    ] as const
    for (const [header, expected] of cases) {
      t.test(`tagHeader ${header} writes the entry's tags as ${JSON.stringify(expected)} on a miss and on both hit paths`, async (t) => {
        const origin = await taggingOrigin(t, { 'surrogate-key': 'product-1 products', 'cache-tag': 'category:7' })
        const gw = await gateway(t, kind, { origin, tagHeader: header })
        for (const answer of await threeAnswers(gw, '/p')) {
          t.equal(answer.headers[header], expected, `${answer.how} (${answer.status ?? ''})`)
          for (const other of ['surrogate-key', 'cache-tag', 'edge-cache-tag'].filter((h) => h !== header)) {
            t.equal(answer.headers[other], undefined, `${answer.how}: no ${other}`)
          }
        }
        t.match((await gw.get('/p')).header('cache-status'), /hit/, 'the last answer was a hit')
      })
    }

    t.test('without tagHeader no tag header goes downstream', async (t) => {
      const origin = await taggingOrigin(t, { 'surrogate-key': 'product-1' })
      const gw = await gateway(t, kind, { origin })
      for (const answer of await threeAnswers(gw, '/p')) {
        for (const h of ['surrogate-key', 'cache-tag', 'edge-cache-tag']) t.equal(answer.headers[h], undefined, `${answer.how}: no ${h}`)
      }
    })

    t.test('hostile tags: tags the CDN would read differently are left out, and the origin\'s own field of that name is replaced', async (t) => {
      // Surrogate-Key tokens may hold commas; Cloudflare would split them into other tags.
      const origin = await taggingOrigin(t, { 'surrogate-key': 'a,purge-everything ok caf\u00e9', 'cache-tag': 'two words, fine', 'edge-cache-tag': 'planted-by-origin' })
      for (const [header, expected] of [['cache-tag', 'ok,fine'], ['edge-cache-tag', 'ok,fine'], ['surrogate-key', 'a,purge-everything ok fine']] as const) {
        const gw = await gateway(t, kind, { origin, tagHeader: header })
        for (const answer of await threeAnswers(gw, '/p')) t.equal(answer.headers[header], expected, `${header}, ${answer.how}`)
      }
    })

    t.test('a response without tags gets no tag header, even when the origin sent that field', async (t) => {
      const origin = await taggingOrigin(t, { 'edge-cache-tag': 'from-origin' })
      const gw = await gateway(t, kind, { origin, tagHeader: 'edge-cache-tag' })
      for (const answer of await threeAnswers(gw, '/p')) t.equal(answer.headers['edge-cache-tag'], undefined, answer.how)
    })

    t.test('keepTagHeaders keeps the origin\'s fields beside the CDN header', async (t) => {
      const origin = await taggingOrigin(t, { 'surrogate-key': 'a b' })
      const gw = await gateway(t, kind, { origin, tagHeader: 'cache-tag', keepTagHeaders: true })
      for (const answer of await threeAnswers(gw, '/p')) {
        t.equal(answer.headers['cache-tag'], 'a,b', answer.how)
        t.equal(answer.headers['surrogate-key'], 'a b', answer.how)
      }
    })
  })
}
