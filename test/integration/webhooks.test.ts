/**
 * CMS webhooks (issue 13 step 4): POST /webhooks/<name> on the admin listener, each kind with a
 * payload and signature built in the test as its CMS documents them; the purge makes the next
 * request a miss. Shopify and Sanity run on both stores.
 */
import { createHmac } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import { request } from 'undici'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'
import { startFakeApi } from '../helpers/fake-api.ts'

const redis = await startRedis(t)
let prefixes = 0
const SHOP = 'shop.example'

interface HookReply {
  status: number
  body: Record<string, unknown>
}

/**
 * A gateway in front of an origin where `/t/<a>+<b>` carries Surrogate-Key `<a> <b>` (fresh 60 s,
 * stale-while-revalidate 30 s), with these webhooks.
 */
async function setup (t: Test, store: 'memory' | 'redis', webhooks: unknown[], extra: Record<string, unknown> = {}): Promise<GatewayHandle> {
  const origin = await startOrigin(t, (req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')
    const tags = path.startsWith('/t/') ? path.slice(3).split('+').join(' ') : ''
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60, stale-while-revalidate=30', ...(tags !== '' ? { 'surrogate-key': tags } : {}) })
    res.end(`${path} ${Math.random()}`)
  })
  return await withGateway(t, {
    config: {
      routes: [{ origin: origin.url }],
      webhooks,
      ...(store === 'redis' ? { redis: { url: redis.url, keyPrefix: `hooks${++prefixes}:`, commandTimeout: '2s' } } : {}),
      ...extra
    }
  })
}

async function send (gw: GatewayHandle, name: string, body: string, headers: Record<string, string>): Promise<HookReply> {
  const res = await request(`${gw.adminUrl}/webhooks/${name}`, { method: 'POST', headers, body })
  const text = await res.body.text()
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown> }
}

/** Requests each path twice so it is stored; the second must be a hit. */
async function prime (t: Test, gw: GatewayHandle, paths: string[]): Promise<void> {
  for (const path of paths) {
    await gw.get(path, { host: SHOP })
    await gw.settled()
    t.match((await gw.get(path, { host: SHOP })).header('cache-status'), /; hit/, `${path} is stored`)
  }
}

async function statusOf (gw: GatewayHandle, path: string): Promise<string> {
  const reply = await gw.get(path, { host: SHOP })
  await gw.settled()
  return reply.header('cache-status') ?? ''
}

const b64 = (alg: string, secret: string, data: string): string => createHmac(alg, secret).update(data).digest('base64')
const hex = (alg: string, secret: string, data: string): string => createHmac(alg, secret).update(data).digest('hex')

// Shopify: base64 HMAC-SHA256 of the raw body in X-Shopify-Hmac-SHA256 (shopify.dev, "Verify webhook deliveries").
const SHOPIFY_SECRET = 'shpss_0123456789abcdef'
const shopifyHook = { name: 'shop', kind: 'shopify', secret: SHOPIFY_SECRET, purge: { tags: ['product:{id}', 'handle:{handle}'], mode: 'hard' } }
// An id beyond 2^53, as Shopify's are: JSON.parse would round it to 788032119674292900.
const shopifyBody = '{"id":788032119674292922,"title":"Shirt","handle":"shirt","variants":[{"id":39072856,"price":"19.00"}]}'
const shopifyHeaders = (body: string, secret = SHOPIFY_SECRET): Record<string, string> => ({
  'content-type': 'application/json',
  'x-shopify-topic': 'products/update',
  'x-shopify-shop-domain': 'shop.myshopify.com',
  'x-shopify-hmac-sha256': b64('sha256', secret, body)
})

// Sanity: sanity-webhook-signature: t=<ms>,v1=<base64url HMAC-SHA256 of "<t>.<body>"> (@sanity/webhook).
const SANITY_SECRET = 'sanity-secret-abc'
const sanitySignature = (body: string, timestamp: number, secret = SANITY_SECRET): string =>
  `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('base64url')}`
const sanityBody = JSON.stringify({ _id: 'post-1', _type: 'post', slug: { _type: 'slug', current: 'hello' }, language: 'en' })

for (const store of ['memory', 'redis'] as const) {
  t.test(`on the ${store} store`, async (t) => {
    t.test('shopify: a signed product update purges its tags (the id kept exact) and the next request is a miss', async (t) => {
      const gw = await setup(t, store, [shopifyHook])
      await prime(t, gw, ['/t/product:788032119674292922', '/t/handle:shirt', '/t/product:788032119674292900', '/t/other'])
      const res = await send(gw, 'shop', shopifyBody, shopifyHeaders(shopifyBody))
      t.equal(res.status, 202)
      t.same(res.body, { webhook: 'shop', kind: 'shopify', queued: true, purge: { tags: ['product:788032119674292922', 'handle:shirt'], urls: [], prefixes: [], mode: 'hard' }, skipped: [] })
      await gw.settled()
      t.match(await statusOf(gw, '/t/product:788032119674292922'), /fwd=uri-miss/, 'the product page was purged')
      t.match(await statusOf(gw, '/t/handle:shirt'), /fwd=uri-miss/, 'so was the handle page')
      t.match(await statusOf(gw, '/t/product:788032119674292900'), /; hit/, 'the rounded id names another product: kept')
      t.match(await statusOf(gw, '/t/other'), /; hit/, 'nothing else was purged')
    })

    t.test('shopify: a wrong, missing or other-body signature is a 401 and purges nothing', async (t) => {
      const gw = await setup(t, store, [shopifyHook])
      await prime(t, gw, ['/t/handle:shirt'])
      const cases: Array<[string, Record<string, string>]> = [
        ['signed with another secret', shopifyHeaders(shopifyBody, 'not-the-secret')],
        ['signed over another body', shopifyHeaders(shopifyBody.replace('shirt', 'shirts'))],
        ['hex instead of base64', { ...shopifyHeaders(shopifyBody), 'x-shopify-hmac-sha256': hex('sha256', SHOPIFY_SECRET, shopifyBody) }],
        ['no signature', { 'content-type': 'application/json' }]
      ]
      for (const [name, headers] of cases) {
        const res = await send(gw, 'shop', shopifyBody, headers)
        t.equal(res.status, 401, name)
        t.equal(res.body.code, 'CG_ERR_WEBHOOK_SIGNATURE', name)
        t.notMatch(JSON.stringify(res.body), SHOPIFY_SECRET, `${name}: the secret is never echoed`)
      }
      await gw.settled()
      t.match(await statusOf(gw, '/t/handle:shirt'), /; hit/)
      t.ok(gw.logLines.some((l) => l.includes('"msg":"webhook refused"')), 'refusals are logged')
    })

    t.test('sanity: a signed document purges (soft: served stale while it refreshes); stale, future and malformed signatures are 401', async (t) => {
      const gw = await setup(t, store, [
        { name: 'cms', kind: 'sanity', secret: SANITY_SECRET, purge: { tags: ['{type}:{slug}'], mode: 'soft' } },
        { name: 'cms-hard', kind: 'sanity', secret: SANITY_SECRET, purge: { urls: ['https://shop.example/{locale}/{slug}'] } }
      ])
      await prime(t, gw, ['/t/post:hello', '/en/hello'])
      const now = gw.clock.now()
      for (const [name, header] of [
        ['six minutes old', sanitySignature(sanityBody, now - 6 * 60_000)],
        ['six minutes ahead', sanitySignature(sanityBody, now + 6 * 60_000)],
        ['wrong secret', sanitySignature(sanityBody, now, 'other')],
        ['no v1', `t=${now}`],
        ['hex signature', `t=${now},v1=${hex('sha256', SANITY_SECRET, `${now}.${sanityBody}`)}`]
      ] as const) {
        const res = await send(gw, 'cms', sanityBody, { 'content-type': 'application/json', 'sanity-webhook-signature': header })
        t.equal(res.status, 401, name)
        t.equal(res.body.code, 'CG_ERR_WEBHOOK_SIGNATURE', name)
      }
      t.match(await statusOf(gw, '/t/post:hello'), /; hit; ttl=/, 'nothing was purged by refused webhooks')

      const res = await send(gw, 'cms', sanityBody, { 'content-type': 'application/json', 'sanity-webhook-signature': sanitySignature(sanityBody, now - 4 * 60_000) })
      t.equal(res.status, 202, 'four minutes old is within the tolerance')
      t.same(res.body.purge, { tags: ['post:hello'], urls: [], prefixes: [], mode: 'soft' })
      await gw.settled()
      t.match(await statusOf(gw, '/t/post:hello'), /fwd=stale/, 'soft: the purged page is served stale while it refreshes')

      const hard = await send(gw, 'cms-hard', sanityBody, { 'content-type': 'application/json', 'sanity-webhook-signature': sanitySignature(sanityBody, now) })
      t.same(hard.body.purge, { tags: [], urls: ['https://shop.example/en/hello'], prefixes: [], mode: 'hard' })
      await gw.settled()
      t.match(await statusOf(gw, '/en/hello'), /fwd=uri-miss/, 'hard: the URL template purged the page')
    })
  })
}

t.test('contentful: a request signed as Contentful signs it purges every locale\'s slug; stale or tampered requests are 401', async (t) => {
  const secret = 'c'.repeat(32) + 'F'.repeat(32) // Contentful secrets are 64 characters
  const gw = await setup(t, 'memory', [{
    name: 'contentful',
    kind: 'contentful',
    secret,
    purge: { urls: ['https://shop.example/{locale}/{slug}'], tags: ['entry:{id}', 'type:{type}'] }
  }])
  await prime(t, gw, ['/en-US/summer-sale', '/de-DE/sommerschlussverkauf', '/t/entry:5KsDBWseXY6QegucYAoacS', '/en-US/other'])
  const body = JSON.stringify({
    sys: { id: '5KsDBWseXY6QegucYAoacS', type: 'Entry', contentType: { sys: { type: 'Link', linkType: 'ContentType', id: 'landingPage' } }, space: { sys: { id: 'yadj1kx9rmg0' } }, environment: { sys: { id: 'master' } } },
    fields: { slug: { 'en-US': 'summer-sale', 'de-DE': 'sommerschlussverkauf' }, title: { 'en-US': 'Summer sale', 'de-DE': 'Sommerschlussverkauf' } }
  })
  // The canonical request of Contentful's request verification: method, path, the signed
  // headers sorted by name as "name:value" joined with ";", the body; hex HMAC-SHA256.
  const sign = (timestamp: number, headers: Record<string, string>, path = '/webhooks/contentful'): Record<string, string> => {
    const signed = { ...headers, 'x-contentful-timestamp': String(timestamp) }
    const names = [...Object.keys(signed), 'x-contentful-signed-headers'].sort()
    const all: Record<string, string> = { ...signed, 'x-contentful-signed-headers': names.join(',') }
    const canonical = `POST\n${path}\n${names.map((n) => `${n}:${all[n] ?? ''}`).join(';')}\n${body}`
    return { ...all, 'x-contentful-signature': hex('sha256', secret, canonical) }
  }
  const base = { 'content-type': 'application/vnd.contentful.management.v1+json', 'x-contentful-topic': 'ContentManagement.Entry.publish', 'x-contentful-webhook-name': 'cachegate' }
  const now = gw.clock.now()

  const stale = await send(gw, 'contentful', body, sign(now - 301_000, base))
  t.equal(stale.status, 401, 'a timestamp older than five minutes')
  const tampered = await send(gw, 'contentful', body, { ...sign(now, base), 'x-contentful-topic': 'ContentManagement.Entry.unpublish' })
  t.equal(tampered.status, 401, 'a signed header changed on the way')
  const otherPath = await send(gw, 'contentful', body, sign(now, base, '/webhooks/other'))
  t.equal(otherPath.status, 401, 'signed for another path')
  t.equal(tampered.body.code, 'CG_ERR_WEBHOOK_SIGNATURE')

  const res = await send(gw, 'contentful', body, sign(now, base))
  t.equal(res.status, 202)
  t.same(res.body.purge, {
    tags: ['entry:5KsDBWseXY6QegucYAoacS', 'type:landingPage'],
    urls: ['https://shop.example/en-US/summer-sale', 'https://shop.example/en-US/sommerschlussverkauf', 'https://shop.example/de-DE/summer-sale', 'https://shop.example/de-DE/sommerschlussverkauf'],
    prefixes: [],
    mode: 'hard'
  }, 'every combination of locale and slug: the right pairs among them')
  await gw.settled()
  t.match(await statusOf(gw, '/en-US/summer-sale'), /fwd=uri-miss/)
  t.match(await statusOf(gw, '/de-DE/sommerschlussverkauf'), /fwd=uri-miss/)
  t.match(await statusOf(gw, '/t/entry:5KsDBWseXY6QegucYAoacS'), /fwd=uri-miss/)
  t.match(await statusOf(gw, '/en-US/other'), /; hit/)
})

t.test('storyblok: hex HMAC-SHA1 of the body in webhook-signature; the story\'s full slug purges its page', async (t) => {
  const secret = 'storyblok-secret'
  const gw = await setup(t, 'memory', [{ name: 'sb', kind: 'storyblok', secret, purge: { urls: ['https://shop.example/{slug}'], tags: ['story:{id}'] } }])
  await prime(t, gw, ['/blog/hello-world', '/blog/other'])
  const body = JSON.stringify({ text: 'The user x published the Story Hello (blog/hello-world)', action: 'published', space_id: 606, story_id: 369689, full_slug: 'blog/hello-world' })
  t.equal((await send(gw, 'sb', body, { 'content-type': 'application/json', 'webhook-signature': hex('sha256', secret, body) })).status, 401, 'SHA-256 is not Storyblok\'s scheme')
  t.equal((await send(gw, 'sb', body, { 'content-type': 'application/json' })).status, 401, 'no signature')
  const res = await send(gw, 'sb', body, { 'content-type': 'application/json', 'webhook-signature': hex('sha1', secret, body) })
  t.equal(res.status, 202)
  t.same(res.body.purge, { tags: ['story:369689'], urls: ['https://shop.example/blog/hello-world'], prefixes: [], mode: 'hard' })
  await gw.settled()
  t.match(await statusOf(gw, '/blog/hello-world'), /fwd=uri-miss/)
  t.match(await statusOf(gw, '/blog/other'), /; hit/)
})

t.test('strapi: the token in Authorization (or the configured header); the entry\'s fields fill the templates', async (t) => {
  const gw = await setup(t, 'memory', [
    { name: 'strapi', kind: 'strapi', secret: 'strapi-token', purge: { tags: ['{type}:{documentId}'], prefixes: ['https://shop.example/{locale}/articles/{slug}'] } },
    { name: 'strapi-custom', kind: 'strapi', secret: 'strapi-token', header: 'X-Webhook-Token', purge: { tags: ['{type}:{id}'] } }
  ])
  const body = JSON.stringify({ event: 'entry.publish', createdAt: '2026-01-01T00:00:00.000Z', model: 'article', uid: 'api::article.article', entry: { id: 7, documentId: 'a1b2c3', slug: 'launch', locale: 'fr' } })
  await prime(t, gw, ['/t/article:a1b2c3', '/fr/articles/launch?page=2', '/fr/articles/other', '/t/article:7'])
  for (const [name, headers] of [
    ['no header', {}],
    ['a wrong token', { authorization: 'Bearer nope' }],
    ['the token in another header', { 'x-webhook-token': 'strapi-token' }]
  ] as const) {
    t.equal((await send(gw, 'strapi', body, { 'content-type': 'application/json', ...headers })).status, 401, name)
  }
  const res = await send(gw, 'strapi', body, { 'content-type': 'application/json', authorization: 'Bearer strapi-token' })
  t.equal(res.status, 202)
  t.same(res.body.purge, { tags: ['article:a1b2c3'], urls: [], prefixes: ['https://shop.example/fr/articles/launch'], mode: 'hard' })
  t.equal((await send(gw, 'strapi-custom', body, { 'content-type': 'application/json', 'x-webhook-token': 'strapi-token' })).status, 202, 'a configured header, token as is')
  await gw.settled()
  t.match(await statusOf(gw, '/t/article:a1b2c3'), /fwd=uri-miss/)
  t.match(await statusOf(gw, '/fr/articles/launch?page=2'), /fwd=uri-miss/, 'the prefix purge')
  t.match(await statusOf(gw, '/fr/articles/other'), /; hit/)
  t.match(await statusOf(gw, '/t/article:7'), /fwd=uri-miss/, 'the custom-header webhook purged too')
})

t.test('generic: fields by path, sha256=<hex> of the body or the token itself', async (t) => {
  const secret = 'generic-secret'
  const gw = await setup(t, 'memory', [{ name: 'gen', kind: 'generic', secret, fields: { id: '$.data.items[0].id', kind: '$.type' }, purge: { tags: ['{kind}:{id}'] } }])
  await prime(t, gw, ['/t/page:42'])
  const body = '{"type":"page","data":{"items":[{"id":42},{"id":43}]}}'
  t.equal((await send(gw, 'gen', body, { 'content-type': 'application/json', 'x-cachegate-signature': 'sha256=' + hex('sha256', 'other', body) })).status, 401)
  const signed = await send(gw, 'gen', body, { 'content-type': 'application/json', 'x-cachegate-signature': 'sha256=' + hex('sha256', secret, body) })
  t.equal(signed.status, 202)
  t.same(signed.body.purge, { tags: ['page:42'], urls: [], prefixes: [], mode: 'hard' })
  t.equal((await send(gw, 'gen', body, { 'content-type': 'application/json', 'x-cachegate-signature': secret })).status, 202, 'the token form')
  await gw.settled()
  t.match(await statusOf(gw, '/t/page:42'), /fwd=uri-miss/)
})

t.test('bad requests: unknown webhook 404, malformed JSON or a non-object 400 (after the signature), nothing purged', async (t) => {
  const gw = await setup(t, 'memory', [shopifyHook])
  const unknown = await send(gw, 'nope', shopifyBody, shopifyHeaders(shopifyBody))
  t.equal(unknown.status, 404)
  t.equal(unknown.body.code, 'CG_ERR_NO_ROUTE')
  for (const body of ['{"id": 1,', '[{"id":1}]', '"text"', '']) {
    const res = await send(gw, 'shop', body, shopifyHeaders(body))
    t.equal(res.status, 400, JSON.stringify(body))
    t.equal(res.body.code, 'CG_ERR_WEBHOOK_INVALID', JSON.stringify(body))
  }
  const unsigned = await send(gw, 'shop', '{"id": 1,', { 'content-type': 'application/json' })
  t.equal(unsigned.status, 401, 'an unsigned malformed body is refused for its signature first')
  const noType = await request(`${gw.adminUrl}/webhooks/shop`, { method: 'POST', headers: { 'x-shopify-hmac-sha256': b64('sha256', SHOPIFY_SECRET, shopifyBody) }, body: shopifyBody })
  t.equal(noType.statusCode, 202, 'no Content-Type: the raw body is read all the same')
  await noType.body.dump()
  await gw.settled()
})

t.test('templates: a missing or empty field skips its template (reported), an empty result is a 200 that purges nothing, hostile values stay inside the template', async (t) => {
  const gw = await setup(t, 'memory', [{
    name: 'shop',
    kind: 'shopify',
    secret: SHOPIFY_SECRET,
    purge: { tags: ['product:{id}'], urls: ['https://shop.example/products/{handle}'], prefixes: ['https://shop.example/collections/{handle}/'] }
  }])
  await prime(t, gw, ['/collections/a/x', '/products/shirt'])
  const post = async (payload: unknown): Promise<HookReply> => {
    const body = JSON.stringify(payload)
    return await send(gw, 'shop', body, shopifyHeaders(body))
  }

  const nothing = await post({ title: 'no id, no handle' })
  t.equal(nothing.status, 200)
  t.same(nothing.body, {
    webhook: 'shop',
    kind: 'shopify',
    queued: false,
    purge: { tags: [], urls: [], prefixes: [], mode: 'hard' },
    skipped: [
      { template: 'product:{id}', reason: 'the payload has no field "id"' },
      { template: 'https://shop.example/products/{handle}', reason: 'the payload has no field "handle"' },
      { template: 'https://shop.example/collections/{handle}/', reason: 'the payload has no field "handle"' }
    ]
  })
  const empty = await post({ id: 5, handle: '' })
  t.same(empty.body.purge, { tags: ['product:5'], urls: [], prefixes: [], mode: 'hard' }, 'an empty handle never widens the prefix to every collection')
  const objectId = await post({ id: { nested: 1 }, handle: null })
  t.equal(objectId.status, 200, 'objects and null are not values')

  const traversal = await post({ handle: '../../admin' })
  t.same(traversal.body.purge, { tags: [], urls: [], prefixes: [], mode: 'hard' }, 'dot segments are refused')
  t.ok((traversal.body.skipped as Array<{ reason: string }>).some((s) => s.reason === 'field "handle" has "." or ".." path segments'), 'and reported')
  const query = await post({ handle: 'a?b=1#frag' })
  t.same(query.body.purge, { tags: [], urls: ['https://shop.example/products/a%3Fb%3D1%23frag'], prefixes: ['https://shop.example/collections/a%3Fb%3D1%23frag/'], mode: 'hard' }, '? and # are encoded, not a query or fragment')
  const hostile = await post({ handle: '@evil.example/x' })
  t.same((hostile.body.purge as { urls: string[] }).urls, ['https://shop.example/products/%40evil.example/x'], 'the host stays the template\'s')
  const huge = await post({ id: 'x'.repeat(2000) })
  t.match(huge.body.skipped, [{ template: 'product:{id}', reason: /at most 1024 bytes/ }], 'an item the purge API refuses is skipped')
  await gw.settled()
  t.match(await statusOf(gw, '/collections/a/x'), /; hit/, 'nothing reached the collections')
})

t.test('a webhook purge is forwarded to the CDNs like any other purge', async (t) => {
  const api = await startFakeApi(t)
  const gw = await setup(t, 'memory', [shopifyHook], { cdn: [{ provider: 'webhook', url: `${api.url}/purge` }] })
  const res = await send(gw, 'shop', shopifyBody, shopifyHeaders(shopifyBody))
  t.equal(res.status, 202)
  await gw.settled()
  await api.answered(1)
  t.match(JSON.parse(api.calls[0]?.body ?? '{}'), { items: ['product:788032119674292922', 'handle:shirt'] }, 'the CDN got the same tags, after the gateway purged')
})
