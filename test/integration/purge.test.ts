/**
 * The purge API (issue: event-driven invalidation): by URL, prefix, tag, host and all, hard,
 * soft and revalidate, on both stores; each kind removes what it should and nothing else.
 */
import t, { type Test } from 'tap'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'
import { catalog, get, isHit, OTHER, purge, SHOP, TOKEN } from './purge-helpers.ts'

/** Asserts which of the (host, path) pairs are still hits. */
async function expectHits (t: Test, gw: GatewayHandle, cases: Array<[string, string, boolean]>): Promise<void> {
  for (const [host, path, hit] of cases) {
    const reply = await get(gw, host, path)
    t.equal(isHit(reply), hit, `${host}${path} ${hit ? 'is still a hit' : 'was purged'} (${reply.header('cache-status') ?? ''})`)
  }
}

async function prime (gw: GatewayHandle, pairs: Array<[string, string]>): Promise<void> {
  for (const [host, path] of pairs) await get(gw, host, path)
  for (const [host, path] of pairs) {
    const reply = await get(gw, host, path)
    if (!isHit(reply)) throw new Error(`${host}${path} was not stored: ${reply.header('cache-status') ?? ''}`)
  }
}

for (const kind of ['memory', 'redis'] as const) {
  t.test(`${kind} store`, async (t) => {
    let redis: RedisServer | undefined
    if (kind === 'redis') redis = await startRedis(t)
    let prefixN = 0
    const setup = async (t: Test, config: Record<string, unknown> = {}, route: Record<string, unknown> = {}): Promise<{ origin: Origin, gw: GatewayHandle }> => {
      const origin = await startOrigin(t, catalog())
      const gw = await withGateway(t, {
        config: {
          admin: { token: TOKEN },
          routes: [{ origin: origin.url, key: { ignoreQuery: ['utm_*'] }, ...route }],
          ...(redis !== undefined ? { redis: { url: redis.url, keyPrefix: `p${prefixN++}:`, commandTimeout: '2s' } } : {}),
          ...config
        }
      })
      return { origin, gw }
    }

    t.test('a URL purge removes that URL (normalized like the key, every Vary variant, HEAD too) and nothing else', async (t) => {
      const { gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1?b=2&a=1'], [SHOP, '/products/2'], [OTHER, '/products/1?b=2&a=1']])
      await get(gw, SHOP, '/i18n', { 'accept-language': 'en' })
      await get(gw, SHOP, '/i18n', { 'accept-language': 'fr' })
      t.ok(isHit(await get(gw, SHOP, '/i18n', { 'accept-language': 'fr' })), 'the fr variant is stored')

      // Ignored query parameters, another order, escapes and upper-case host: the same key.
      const res = await purge(gw, { urls: ['http://SHOP.example/products/%31?a=1&utm_source=mail&b=2', `http://${SHOP}/i18n`] })
      t.equal(res.status, 200)
      t.match(res.body, { purged: 3, marked: 0, mode: 'hard' }, 'one entry for the product, two variants of /i18n')
      t.type(res.body.durationMs, 'number')

      const head = await gw.request('/products/1?a=1&b=2', { method: 'HEAD', headers: { host: SHOP } })
      t.notOk(isHit(head), 'HEAD shares the purged GET entry: a miss')
      await gw.settled()
      await expectHits(t, gw, [[SHOP, '/products/2', true], [OTHER, '/products/1?b=2&a=1', true]])
      // The first request after the purge finds no Vary record; the second finds the one it left.
      t.match((await get(gw, SHOP, '/i18n', { 'accept-language': 'en' })).header('cache-status'), /fwd=uri-miss/, 'the en variant went with the Vary record')
      t.match((await get(gw, SHOP, '/i18n', { 'accept-language': 'fr' })).header('cache-status'), /fwd=vary-miss/, 'the fr variant went')
    })

    t.test('purges are idempotent', async (t) => {
      const { gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1']])
      t.match((await purge(gw, { urls: [`http://${SHOP}/products/1`] })).body, { purged: 1 })
      t.match((await purge(gw, { urls: [`http://${SHOP}/products/1`] })).body, { purged: 0, marked: 0, mode: 'hard' })
    })

    t.test('a prefix purge removes the URLs of that host under the prefix and nothing else', async (t) => {
      const { gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1'], [SHOP, '/products/2?x=1'], [SHOP, '/productsx'], [SHOP, '/about'], [OTHER, '/products/1']])
      const res = await purge(gw, { prefixes: [`http://${SHOP}/products/`] })
      t.equal(res.status, 200)
      t.match(res.body, { purged: 2, mode: 'hard' })
      await expectHits(t, gw, [[SHOP, '/products/1', false], [SHOP, '/products/2?x=1', false], [SHOP, '/productsx', true], [SHOP, '/about', true], [OTHER, '/products/1', true]])
    })

    t.test('a tag purge removes every entry carrying the tag (Surrogate-Key and Cache-Tag), matched exactly', async (t) => {
      const { gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1'], [SHOP, '/products/2'], [SHOP, '/categories/7'], [OTHER, '/about']])
      const none = await purge(gw, { tags: ['Product-1', 'product'] })
      t.match(none.body, { purged: 0 }, 'tags are case-sensitive and never matched by prefix')
      const res = await purge(gw, { tags: ['product-1'] })
      t.match(res.body, { purged: 2, mode: 'hard' }, 'the product page (Surrogate-Key) and the category page (Cache-Tag)')
      await expectHits(t, gw, [[SHOP, '/products/1', false], [SHOP, '/categories/7', false], [SHOP, '/products/2', true], [OTHER, '/about', true]])
    })

    t.test('a host purge removes everything for that host and nothing for other hosts', async (t) => {
      const { gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1'], [SHOP, '/about'], [`${SHOP}:8080`, '/about'], [OTHER, '/about']])
      const res = await purge(gw, { hosts: ['Shop.Example'] })
      t.match(res.body, { purged: 3 }, 'every port of a bare host name')
      await expectHits(t, gw, [[SHOP, '/products/1', false], [SHOP, '/about', false], [`${SHOP}:8080`, '/about', false], [OTHER, '/about', true]])
    })

    t.test('"all": true purges everything', async (t) => {
      const { gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1'], [OTHER, '/about']])
      t.match((await purge(gw, { all: true })).body, { purged: 2 })
      await expectHits(t, gw, [[SHOP, '/products/1', false], [OTHER, '/about', false]])
    })

    t.test('a soft purge serves the old body stale while one background refresh fetches the new one', async (t) => {
      const { origin, gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1'], [SHOP, '/products/2']])
      const res = await purge(gw, { tags: ['product-1'], mode: 'soft' })
      t.match(res.body, { purged: 0, marked: 1, mode: 'soft' })
      t.equal(origin.count('/products/1'), 1, 'nothing fetched by the purge itself')

      const stale = await gw.get('/products/1', { host: SHOP })
      t.match(stale.header('cache-status'), /^cachegate; hit; fwd=stale;/, 'a stale hit')
      t.equal(stale.body, `${SHOP}/products/1 v1`, 'the old body')
      await gw.settled()
      t.equal(origin.count('/products/1'), 2, 'one background refresh')
      const fresh = await get(gw, SHOP, '/products/1')
      t.ok(isHit(fresh), 'the next request is a fresh hit')
      t.equal(fresh.body, `${SHOP}/products/1 v2`, 'with the new body')
      await expectHits(t, gw, [[SHOP, '/products/2', true]])
    })

    t.test('"soft": true is a shorthand for mode soft; a conflicting mode is refused', async (t) => {
      const { gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1']])
      const conflict = await purge(gw, { tags: ['product-1'], soft: true, mode: 'hard' })
      t.equal(conflict.status, 400)
      t.match(conflict.body, { code: 'CG_ERR_PURGE_INVALID', message: /^soft: / })
      t.match((await purge(gw, { tags: ['product-1'], soft: true })).body, { marked: 1, mode: 'soft' })
    })

    t.test('a revalidate purge refreshes the purged URLs before the next client comes', async (t) => {
      const { origin, gw } = await setup(t)
      await prime(gw, [[SHOP, '/products/1'], [SHOP, '/categories/7'], [SHOP, '/products/2']])
      const res = await purge(gw, { tags: ['product-1'], mode: 'revalidate' })
      t.match(res.body, { purged: 0, marked: 2, mode: 'revalidate' })
      await gw.settled()
      t.equal(origin.count('/products/1'), 2, 'the product was fetched again in the background')
      t.equal(origin.count('/categories/7'), 2, 'so was the category page')
      t.equal(origin.count('/products/2'), 1, 'nothing else was')
      const next = await get(gw, SHOP, '/products/1')
      t.ok(isHit(next), `the next client gets a fresh hit (${next.header('cache-status') ?? ''})`)
      t.equal(next.body, `${SHOP}/products/1 v2`, 'with the new body, without waiting for the origin')
      t.equal(origin.count('/products/1'), 2)
    })

    t.test('tag headers go downstream only on routes with keepTagHeaders', async (t) => {
      const origin = await startOrigin(t, catalog())
      const gw = await withGateway(t, {
        config: {
          admin: { token: TOKEN },
          routes: [{ origin: origin.url, host: 'keep.example', keepTagHeaders: true }, { origin: origin.url }],
          ...(redis !== undefined ? { redis: { url: redis.url, keyPrefix: `p${prefixN++}:`, commandTimeout: '2s' } } : {})
        }
      })
      for (const round of ['miss', 'hit']) {
        const dropped = await get(gw, SHOP, '/products/1')
        t.equal(dropped.header('surrogate-key'), undefined, `Surrogate-Key removed (${round})`)
        const droppedCt = await get(gw, SHOP, '/categories/1')
        t.equal(droppedCt.header('cache-tag'), undefined, `Cache-Tag removed (${round})`)
        const kept = await get(gw, 'keep.example', '/products/1')
        t.equal(kept.header('surrogate-key'), 'product-1 products', `kept with keepTagHeaders (${round})`)
      }
      t.match((await purge(gw, { tags: ['product-1'] })).body, { purged: 3 }, 'the tags were stored all the same')
    })
  })
}
