// Language selection (src/cache/language.ts, conformance vary-normalise-lang-select): a response
// stored with `Vary: Accept-Language` and one `Content-Language` answers a request whose own
// variant is missing when that request prefers the language strictly above all others; never
// on a tie, a lower preference, another tag, another Vary field, or a stored entry that no
// longer says the language. On the memory store, on Redis, and on Redis with an L1 (tiered).
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheKey } from '../../src/cache/key.ts'
import { LANGUAGE_ALIAS, variantId } from '../../src/cache/vary.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { withGatewayOn, type GatewayHandle } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis' | 'tiered'

const TOKEN = 'language-test-token-0123456789'
const redis = await startRedis(t)

/** A gateway on the named store; `route` adds route options, `config` top-level sections. */
async function gateway (t: Test, kind: StoreKind, origin: Origin, options: { route?: Record<string, unknown>, config?: Record<string, unknown> } = {}): Promise<GatewayHandle> {
  const route = { origin: origin.url, ...(kind === 'tiered' ? { l1: true } : {}), ...options.route }
  return await withGatewayOn(t, kind === 'memory' ? undefined : redis, { config: { admin: { token: TOKEN }, ...options.config, routes: [route] } })
}

/** The language an origin negotiating by Accept-Language picks: the highest q it has, in listed order on ties. */
function pick (header: string | undefined, available: readonly string[]): string {
  const wanted = (header ?? '').split(',').map((item, i) => {
    const [range = '', q = 'q=1'] = item.split(';').map((p) => p.trim())
    return { range: range.toLowerCase(), q: Number(q.slice(2)), i }
  }).sort((a, b) => b.q - a.q || a.i - b.i)
  for (const w of wanted) {
    const found = available.find((l) => l.toLowerCase() === w.range)
    if (w.q > 0 && found !== undefined) return found
  }
  return available[0] ?? 'en'
}

/**
 * Answers `<language> #<n>` with Vary: Accept-Language (or `vary`) and that Content-Language;
 * `echo` adds ` (you asked for: <Accept-Language>)`, so a body shows which request produced it.
 */
function negotiating (extra: Record<string, string> = {}, available: readonly string[] = ['de', 'fr', 'de-CH'], echo = false) {
  return (req: IncomingMessage, res: ServerResponse, n: number): void => {
    const lang = pick(req.headers['accept-language'], available)
    const etag = `"${lang}"`
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { 'cache-control': 'max-age=600', vary: 'Accept-Language', 'content-language': lang, etag })
      res.end()
      return
    }
    const body = `${lang} #${n}${echo ? ` (you asked for: ${String(req.headers['accept-language'])})` : ''}`
    res.writeHead(200, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'max-age=600',
      vary: 'Accept-Language',
      'content-language': lang,
      ...extra
    })
    res.end(body)
  }
}

interface Seen { status: string, body: string }

async function get (gw: GatewayHandle, path: string, headers: Record<string, string>): Promise<Seen> {
  const res = await gw.get(path, headers)
  await gw.settled()
  return { status: res.header('cache-status') ?? '', body: res.body }
}

const HIT = /^cachegate; hit; ttl=\d+$/
const MISS = /^cachegate; fwd=vary-miss; fwd-status=200; stored$/

async function purge (gw: GatewayHandle, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${gw.adminUrl}/purge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body)
  })
  return await res.json() as Record<string, unknown>
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('vary-normalise-lang-select: a request preferring the stored Content-Language is a plain hit', async (t) => {
      const origin = await startOrigin(t, negotiating())
      const gw = await gateway(t, kind, origin)
      const first = await get(gw, '/page', { 'accept-language': 'en, de' })
      t.same(first, { status: 'cachegate; fwd=uri-miss; fwd-status=200; stored', body: 'de #1' })
      const second = await get(gw, '/page', { 'accept-language': 'fr;q=0.5, de;q=1.0' })
      t.match(second.status, HIT, 'a normal hit, from the alias: no answer to Accept-Language: de is stored')
      t.equal(second.body, 'de #1')
      t.match(await get(gw, '/page', { 'accept-language': 'DE' }), { status: HIT, body: 'de #1' }, 'Accept-Language: DE selects the alias itself')
      t.match(await get(gw, '/page', { 'accept-language': 'de, fr;q=0.5, it;q=0.5' }), { status: HIT, body: 'de #1' }, 'a tie below the top does not matter')
      t.match(await get(gw, '/page', { 'accept-language': 'en, de' }), { status: HIT, body: 'de #1' }, 'its own variant is still stored')
      t.equal(origin.count(), 1)
    })

    t.test('an exact Accept-Language: de variant is never replaced by the answer to another Accept-Language', async (t) => {
      const origin = await startOrigin(t, negotiating({}, ['de', 'fr'], true))
      const gw = await gateway(t, kind, origin)
      t.match(await get(gw, '/page', { 'accept-language': 'de' }), { status: /^cachegate; fwd=uri-miss; fwd-status=200; stored$/, body: 'de #1 (you asked for: de)' })
      // An attacker's misses that the origin answers with its German fallback, labelled de.
      t.match(await get(gw, '/page', { 'accept-language': 'xx-evil, de;q=0.1' }), { status: MISS, body: 'de #2 (you asked for: xx-evil, de;q=0.1)' })
      t.match(await get(gw, '/page', { 'accept-language': 'de, xx' }), { status: MISS, body: 'de #3 (you asked for: de, xx)' }, 'a tie')
      t.match(await get(gw, '/page', { 'accept-language': 'de' }), { status: HIT, body: 'de #1 (you asked for: de)' }, 'de clients still get the origin\'s answer to de')
      t.match(await get(gw, '/page', { 'accept-language': 'DE' }), { status: HIT, body: 'de #1 (you asked for: de)' }, 'in any spelling')
      t.match(await get(gw, '/page', { 'accept-language': 'fr;q=0.5, de;q=1.0' }), { status: HIT, body: 'de #1 (you asked for: de)' }, 'language selection prefers the answer to de alone over the alias')
      t.match(await get(gw, '/page', { 'accept-language': 'xx-evil, de;q=0.1' }), { status: HIT, body: 'de #2 (you asked for: xx-evil, de;q=0.1)' }, 'the attacker gets its own answer back')
      t.equal(origin.count(), 3)
    })

    t.test('with no answer to Accept-Language: de stored, the alias serves a request preferring de', async (t) => {
      const origin = await startOrigin(t, negotiating({}, ['de', 'fr'], true))
      const gw = await gateway(t, kind, origin)
      t.match(await get(gw, '/page', { 'accept-language': 'xx-other, de;q=0.1' }), { status: /^cachegate; fwd=uri-miss; fwd-status=200; stored$/, body: 'de #1 (you asked for: xx-other, de;q=0.1)' })
      t.match(await get(gw, '/page', { 'accept-language': 'fr;q=0.5, de;q=1.0' }), { status: HIT, body: 'de #1 (you asked for: xx-other, de;q=0.1)' })
      t.match(await get(gw, '/page', { 'accept-language': 'de' }), { status: HIT, body: 'de #1 (you asked for: xx-other, de;q=0.1)' }, 'Accept-Language: de with no variant of its own')
      t.equal(origin.count(), 1)
    })

    t.test('a tie at the top, a lower preference and another tag are not served the stored language', async (t) => {
      const origin = await startOrigin(t, negotiating())
      const gw = await gateway(t, kind, origin)
      t.equal((await get(gw, '/page', { 'accept-language': 'en, de' })).body, 'de #1')
      t.match(await get(gw, '/page', { 'accept-language': 'de, fr' }), { status: MISS, body: 'de #2' }, 'de, fr: a tie goes to the origin')
      t.match(await get(gw, '/page', { 'accept-language': 'de;q=0.9, fr' }), { status: MISS, body: 'fr #3' }, 'fr is preferred: never the de entry')
      t.match(await get(gw, '/page', { 'accept-language': 'de-CH' }), { status: MISS, body: 'de-CH #4' }, 'de-CH is not de')
      t.match(await get(gw, '/page', { 'accept-language': '*, de;q=0.5' }), { status: MISS, body: 'de #5' }, '* first selects nothing')
      t.match(await get(gw, '/page', { 'accept-language': 'de;q=0' }), { status: MISS, body: 'de #6' }, 'q=0 is not a preference')
      t.equal(origin.count(), 6)
    })

    t.test('a stored entry that does not say the request\'s language is not served from its alias', async (t) => {
      const origin = await startOrigin(t, negotiating())
      const gw = await gateway(t, kind, origin)
      await get(gw, '/page', { 'accept-language': 'en, de' })
      const key = gw.outcomes.at(-1)?.url as CacheKey
      const store = gw.gateway.store
      const deAlias = variantId({ 'accept-language': 'de', [LANGUAGE_ALIAS]: 'de' })
      const stored = await store.getVariant(key, deAlias)
      if (stored === null) throw new Error('the alias was not stored')
      t.equal(stored.body.toString(), 'de #1')
      const options = { ttlMs: 600_000, maxVariants: 32 }
      // Hostile or corrupt store data: the alias's slot now holds a response that says it is French.
      await store.put(key, deAlias, { ...stored, headers: { ...stored.headers, 'content-language': 'fr' }, body: Buffer.from('hostile fr') }, options)
      t.match(await get(gw, '/page', { 'accept-language': 'fr;q=0.5, de' }), { status: MISS, body: 'de #2' }, 'Content-Language differs from the alias')
      // A response in de stored under the alias's slot but for another variant's values.
      await store.put(key, deAlias, { ...stored, vary: { 'accept-language': 'en' }, body: Buffer.from('hostile en') }, options)
      t.match(await get(gw, '/page', { 'accept-language': 'it;q=0.5, de' }), { status: MISS, body: 'de #3' }, 'variant values differ from the alias')
      // Two languages: the content is not in one language.
      await store.put(key, deAlias, { ...stored, headers: { ...stored.headers, 'content-language': 'de, en' }, body: Buffer.from('hostile de, en') }, options)
      t.match(await get(gw, '/page', { 'accept-language': 'nl;q=0.5, de' }), { status: MISS, body: 'de #4' }, 'two Content-Language tags')
      t.equal(origin.count(), 4)
    })

    t.test('a variant selected by another field besides Accept-Language is not selected by language', async (t) => {
      const origin = await startOrigin(t, negotiating({ vary: 'Accept-Language, Accept-Encoding' }))
      const gw = await gateway(t, kind, origin)
      await get(gw, '/page', { 'accept-language': 'en, de', 'accept-encoding': 'gzip' })
      t.match(await get(gw, '/page', { 'accept-language': 'fr;q=0.5, de', 'accept-encoding': 'gzip' }), { status: MISS, body: 'de #2' }, 'Vary: Accept-Language, Accept-Encoding')
      t.match(await get(gw, '/page', { 'accept-language': 'de', 'accept-encoding': 'gzip' }), { status: MISS, body: 'de #3' }, 'no alias was stored')

      const keyedOrigin = await startOrigin(t, negotiating())
      const keyed = await gateway(t, kind, keyedOrigin, { route: { key: { headers: ['x-tenant'] } } })
      await get(keyed, '/page', { 'accept-language': 'en, de', 'x-tenant': 'a' })
      t.match(await get(keyed, '/page', { 'accept-language': 'fr;q=0.5, de', 'x-tenant': 'a' }), { status: MISS, body: 'de #2' }, 'a route key header takes part')
    })

    t.test('languageSelection: false turns it off', async (t) => {
      const origin = await startOrigin(t, negotiating())
      const gw = await gateway(t, kind, origin, { route: { languageSelection: false } })
      await get(gw, '/page', { 'accept-language': 'en, de' })
      t.match(await get(gw, '/page', { 'accept-language': 'fr;q=0.5, de;q=1.0' }), { status: MISS, body: 'de #2' })
      t.match(await get(gw, '/page', { 'accept-language': 'de' }), { status: MISS, body: 'de #3' }, 'no alias was stored')
      t.match(await get(gw, '/page', { 'accept-language': 'en, de' }), { status: HIT, body: 'de #1' }, 'exact variants as usual')
    })

    t.test('a purge of the URL or of its tag removes the alias with the variants', async (t) => {
      const origin = await startOrigin(t, negotiating({ 'surrogate-key': 'page' }))
      const gw = await gateway(t, kind, origin)
      await get(gw, '/page', { 'accept-language': 'en, de' })
      const key = gw.outcomes.at(-1)?.url as CacheKey
      t.match(await purge(gw, { urls: [key] }), { purged: 2 }, 'the response and its alias')
      t.match(await get(gw, '/page', { 'accept-language': 'de' }), { status: /^cachegate; fwd=uri-miss/, body: 'de #2' }, 'the alias went too')
      t.match(await get(gw, '/page', { 'accept-language': 'en, de' }), { status: MISS, body: 'de #3' })
      t.match(await purge(gw, { tags: ['page'] }), { purged: 3 }, 'by tag: the answer to de, the answer to en, de and its alias')
      t.match(await get(gw, '/page', { 'accept-language': 'it;q=0.5, de' }), { status: /^cachegate; fwd=uri-miss/, body: 'de #4' })
      t.equal(origin.count(), 4)
    })

    t.test('the alias counts as a variant for maxVariants and is dropped before the response it copies', async (t) => {
      const origin = await startOrigin(t, negotiating())
      const gw = await gateway(t, kind, origin, { config: { cache: { maxVariants: 2 } } })
      await get(gw, '/page', { 'accept-language': 'en, de' })
      t.match(await get(gw, '/page', { 'accept-language': 'fr' }), { status: MISS, body: 'fr #2' })
      t.match(await get(gw, '/page', { 'accept-language': 'en, de' }), { status: HIT, body: 'de #1' }, 'the response survives the cap')
      t.match(await get(gw, '/page', { 'accept-language': 'it;q=0.5, de' }), { status: MISS, body: 'de #3' }, 'its alias was dropped')

      const oneOrigin = await startOrigin(t, negotiating())
      const one = await gateway(t, kind, oneOrigin, { config: { cache: { maxVariants: 1 } } })
      await get(one, '/page', { 'accept-language': 'en, de' })
      t.match(await get(one, '/page', { 'accept-language': 'en, de' }), { status: HIT, body: 'de #1' }, 'with a cap of 1 the response is kept, no alias')
      t.match(await get(one, '/page', { 'accept-language': 'fr;q=0.5, de' }), { status: MISS, body: 'de #2' })
    })

    t.test('a stale alias is revalidated with its validators and freshened by a 304', async (t) => {
      const origin = await startOrigin(t, negotiating({ etag: '"de"', 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, origin)
      await get(gw, '/page', { 'accept-language': 'en, de' })
      gw.clock.advance(120_000)
      const revalidated = await get(gw, '/page', { 'accept-language': 'fr;q=0.5, de' })
      t.match(revalidated, { status: /^cachegate; fwd=stale; fwd-status=304; stored/, body: 'de #1' })
      t.equal(origin.requests[1]?.headers['if-none-match'], '"de"')
      t.equal(origin.requests[1]?.headers['accept-language'], 'fr;q=0.5, de', 'the client\'s own Accept-Language went to the origin')
      t.match(await get(gw, '/page', { 'accept-language': 'it;q=0.5, de' }), { status: HIT, body: 'de #1' }, 'the freshened alias')
      t.equal(origin.count(), 2)
    })
  })
}

behaviours('memory')
behaviours('redis')
behaviours('tiered')
