/**
 * The behaviour every Store honours. Each store's test file calls storeContract with a
 * factory that builds a fresh, empty store per subtest.
 *
 * Indexes: a store may return index members whose entries are gone (the Redis store keeps
 * members until their expiry passes, so that a racing put can never leave a live entry out
 * of an index). The purge layer calls deleteUrl for every URL returned, so the contract
 * asks only that (a) every live entry is listed, (b) nothing that was never stored is
 * listed, and (c) a listed URL that is gone deletes as 0. Stores with exact indexes assert
 * that in their own files.
 */
import type { Test } from 'tap'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { CacheKey, VariantId } from '../../src/cache/key.ts'
import { LANGUAGE_ALIAS } from '../../src/cache/vary.ts'
import type { ManualClock } from '../../src/clock.ts'
import type { InvalidEntry, PutOptions, Store } from '../../src/store/store.ts'

export interface StoreHarness {
  store: Store
  clock: ManualClock
  /**
   * Asserts that what put() stored for `url` goes once `ttlMs` has passed. Absent: the
   * store expires on its clock, and the contract advances the ManualClock and reads.
   */
  assertExpires?: (t: Test, url: CacheKey, ttlMs: number) => Promise<void>
}

export type MakeStore = (t: Test) => Promise<StoreHarness>

export const key = (url: string): CacheKey => url as CacheKey
export const variant = (id: string): VariantId => id as VariantId
const NO_VARY = variant('')

/** Every byte value, so a codec that is not binary-safe shows. */
export const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

export function makeEntry (url: string, overrides: Partial<CacheEntry> = {}): CacheEntry {
  return {
    url: key(url),
    status: 200,
    headers: {
      'content-type': 'application/octet-stream',
      'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
      etag: '"v1"',
      // obs-text (RFC 9110 §5.5): bytes 0x80-0xFF, read as latin1 characters.
      'x-obs-text': 'caf\u00e9 \u00ff'
    },
    body: Buffer.from(ALL_BYTES),
    requestTime: 1_767_225_599_900,
    responseTime: 1_767_225_600_000,
    initialAge: 100,
    freshness: 60_000,
    staleWhileRevalidate: 30_000,
    staleIfError: 300_000,
    vary: {},
    tags: ['product', 'product:1'],
    mustRevalidate: false,
    noCache: false,
    invalidatedAt: 0,
    ...overrides
  }
}

export const PUT: PutOptions = { ttlMs: 60_000, maxVariants: 8 }

/** Compares two entries field by field, the body by its bytes. */
export function sameEntry (t: Test, actual: CacheEntry | null, expected: CacheEntry, message = 'same entry'): void {
  if (actual === null) {
    t.fail(`${message}: got null`)
    return
  }
  const { body: actualBody, ...actualMeta } = actual
  const { body: expectedBody, ...expectedMeta } = expected
  t.strictSame(actualMeta, expectedMeta, message)
  t.ok(Buffer.compare(actualBody, expectedBody) === 0, `${message}: body bytes`)
}

export async function storeContract (t: Test, name: string, make: MakeStore): Promise<void> {
  const A1 = key('http://a.example/products/1?a=1')
  const A2 = key('http://a.example/products/2')
  const A3 = key('http://a.example/about')
  const B1 = key('http://b.example/products/1')
  const A_PORT = key('http://a.example:8080/products/9')

  await t.test(`${name}: an unknown URL has no Vary record and no entry`, async (t) => {
    const { store } = await make(t)
    t.strictSame(await store.lookup(A1), { vary: null, entry: null })
    t.equal(await store.getVariant(A1, variant('x')), null)
    t.equal(await store.deleteUrl(A1), 0)
    t.equal(await store.markStale(A1, 1), 0)
    t.strictSame(await store.urlsForTag('product'), [])
    t.strictSame(await store.urlsForPrefix('http://a.example', ''), [])
    t.strictSame(await store.origins(), [])
  })

  await t.test(`${name}: put then lookup returns an equal entry`, async (t) => {
    const { store } = await make(t)
    const entry = makeEntry(A1)
    await store.put(A1, NO_VARY, entry, PUT)
    const found = await store.lookup(A1)
    t.strictSame(found.vary, [], 'the URL does not vary')
    sameEntry(t, found.entry, makeEntry(A1))
    sameEntry(t, await store.getVariant(A1, NO_VARY), makeEntry(A1), 'getVariant("") answers too')
  })

  await t.test(`${name}: an empty body and odd header values survive`, async (t) => {
    const { store } = await make(t)
    const entry = makeEntry(A1, { status: 204, body: Buffer.alloc(0), headers: { 'x-empty': '', 'x-list': [] }, tags: [], invalidatedAt: 5 })
    await store.put(A1, NO_VARY, entry, PUT)
    sameEntry(t, (await store.lookup(A1)).entry, entry)
  })

  await t.test(`${name}: changing the objects given to put or got from a read does not change the store`, async (t) => {
    const { store } = await make(t)
    const entry = makeEntry(A1)
    await store.put(A1, NO_VARY, entry, PUT)
    entry.body[0] = 0xff
    entry.headers.etag = '"changed"'
    ;(entry.headers['set-cookie'] as string[]).push('c=3')
    entry.tags.push('other')
    sameEntry(t, (await store.lookup(A1)).entry, makeEntry(A1))

    const read = await store.getVariant(A1, NO_VARY)
    if (read !== null) {
      // A store may hand out frozen objects; either the write throws or it must not stick.
      try { read.headers.etag = '"mutated"' } catch {}
      try { read.status = 500 } catch {}
    }
    sameEntry(t, await store.getVariant(A1, NO_VARY), makeEntry(A1))
  })

  await t.test(`${name}: put rejects an entry made for another URL`, async (t) => {
    const { store } = await make(t)
    await t.rejects(store.put(A1, NO_VARY, makeEntry(A2), PUT))
    t.strictSame(await store.lookup(A1), { vary: null, entry: null })
  })

  await t.test(`${name}: an entry that fails the entry check reads as absent, is deleted and reported once`, async (t) => {
    const { store } = await make(t)
    if (store.onInvalidEntry === undefined) {
      t.fail('the store reports invalid entries')
      return
    }
    const reports: InvalidEntry[] = []
    const reported = new Promise<void>((resolve) => {
      store.onInvalidEntry?.((e) => {
        reports.push(e)
        resolve()
      })
    })
    // put() does not check: the check belongs to the read, where stored bytes come back.
    await store.put(A1, NO_VARY, makeEntry(A1, { headers: { 'x-injected': 'a\r\nset-cookie: evil=1' } }), PUT)
    t.strictSame(await store.lookup(A1), { vary: [], entry: null }, 'read as absent, never served')
    await reported
    t.strictSame(reports, [{ url: A1, variant: NO_VARY, problem: 'header-value', store: reports[0]?.store, deleted: true }])
    t.strictSame(await store.lookup(A1), { vary: null, entry: null }, 'deleted with the URL\'s Vary record')
    t.equal(reports.length, 1, 'reported once')
  })

  await t.test(`${name}: a variant that fails the entry check reads as absent and the other variants stay`, async (t) => {
    const { store } = await make(t)
    const reported = new Promise<InvalidEntry>((resolve) => { store.onInvalidEntry?.(resolve) })
    const vary = (lang: string): Partial<CacheEntry> => ({ vary: { 'accept-language': lang } })
    await store.put(A1, variant('en'), makeEntry(A1, vary('en')), PUT)
    await store.put(A1, variant('fr'), makeEntry(A1, { ...vary('fr'), status: 1000 }), PUT)
    t.equal(await store.getVariant(A1, variant('fr')), null)
    t.match(await reported, { url: A1, variant: 'fr', problem: 'status', deleted: true })
    sameEntry(t, await store.getVariant(A1, variant('en')), makeEntry(A1, vary('en')), 'the valid variant is kept')
    t.strictSame((await store.lookup(A1)).vary, ['accept-language'])
  })

  await t.test(`${name}: a varying URL records its Vary names and keeps each variant`, async (t) => {
    const { store } = await make(t)
    const en = makeEntry(A1, { vary: { 'accept-language': 'en', 'accept-encoding': 'gzip' }, body: Buffer.from('en') })
    const fr = makeEntry(A1, { vary: { 'accept-language': 'fr', 'accept-encoding': null }, body: Buffer.from('fr') })
    await store.put(A1, variant('en'), en, PUT)
    await store.put(A1, variant('fr'), fr, PUT)
    t.strictSame(await store.lookup(A1), { vary: ['accept-encoding', 'accept-language'], entry: null },
      'names come back sorted; no entry for the no-Vary variant')
    sameEntry(t, await store.getVariant(A1, variant('en')), en)
    sameEntry(t, await store.getVariant(A1, variant('fr')), fr)
    t.equal(await store.getVariant(A1, variant('de')), null)
  })

  await t.test(`${name}: a language alias is one more variant of its URL: the Vary record stays, it reads back, it goes with the URL`, async (t) => {
    const { store } = await make(t)
    const de = makeEntry(A1, { vary: { 'accept-language': 'de' }, body: Buffer.from('de') })
    const alias = makeEntry(A1, { vary: { 'accept-language': 'de', [LANGUAGE_ALIAS]: 'de' }, body: Buffer.from('alias') })
    await store.put(A1, variant('de'), de, PUT)
    await store.put(A1, variant('alias'), alias, PUT)
    t.strictSame((await store.lookup(A1)).vary, ['accept-language'], 'the mark names no request field: Vary unchanged, the exact variant kept')
    sameEntry(t, await store.getVariant(A1, variant('de')), de)
    sameEntry(t, await store.getVariant(A1, variant('alias')), alias, 'passes the entry check')
    t.equal(await store.deleteUrl(A1), 2)
  })

  await t.test(`${name}: a changed Vary replaces the old variants`, async (t) => {
    const { store } = await make(t)
    await store.put(A1, NO_VARY, makeEntry(A1), PUT)
    await store.put(A1, variant('en'), makeEntry(A1, { vary: { 'accept-language': 'en' } }), PUT)
    t.strictSame((await store.lookup(A1)).vary, ['accept-language'])
    t.equal((await store.lookup(A1)).entry, null, 'the no-Vary entry went when Vary appeared')

    await store.put(A1, variant('gz'), makeEntry(A1, { vary: { 'accept-encoding': 'gzip' } }), PUT)
    t.strictSame((await store.lookup(A1)).vary, ['accept-encoding'])
    t.equal(await store.getVariant(A1, variant('en')), null, 'the variant of the old Vary went')
    t.not(await store.getVariant(A1, variant('gz')), null)

    await store.put(A1, NO_VARY, makeEntry(A1), PUT)
    t.strictSame((await store.lookup(A1)).vary, [], 'dropping Vary replaces too')
    t.equal(await store.getVariant(A1, variant('gz')), null)
    t.equal(await store.deleteUrl(A1), 1, 'one entry left')
  })

  await t.test(`${name}: the variant cap drops the least recently stored variant`, async (t) => {
    const { store } = await make(t)
    const put = async (id: string): Promise<void> => {
      await store.put(A1, variant(id), makeEntry(A1, { vary: { accept: id } }), { ttlMs: 60_000, maxVariants: 2 })
    }
    await put('a')
    await put('b')
    await put('a') // stored again: now the newest
    await put('c')
    t.equal(await store.getVariant(A1, variant('b')), null, 'b was the least recently stored')
    t.not(await store.getVariant(A1, variant('a')), null)
    t.not(await store.getVariant(A1, variant('c')), null)
    await put('d')
    t.equal(await store.getVariant(A1, variant('a')), null)
    t.equal(await store.deleteUrl(A1), 2)
  })

  await t.test(`${name}: deleteVariant removes one variant only`, async (t) => {
    const { store } = await make(t)
    await store.put(A1, variant('en'), makeEntry(A1, { vary: { 'accept-language': 'en' } }), PUT)
    await store.put(A1, variant('fr'), makeEntry(A1, { vary: { 'accept-language': 'fr' } }), PUT)
    await store.deleteVariant(A1, variant('en'))
    await store.deleteVariant(A1, variant('nope'))
    await store.deleteVariant(A2, variant('en'))
    t.equal(await store.getVariant(A1, variant('en')), null)
    t.not(await store.getVariant(A1, variant('fr')), null)
    t.strictSame((await store.lookup(A1)).vary, ['accept-language'])
  })

  await t.test(`${name}: deleteUrl removes every variant and the Vary record and counts the entries`, async (t) => {
    const { store } = await make(t)
    await store.put(A1, variant('en'), makeEntry(A1, { vary: { 'accept-language': 'en' } }), PUT)
    await store.put(A1, variant('fr'), makeEntry(A1, { vary: { 'accept-language': 'fr' } }), PUT)
    await store.put(A2, NO_VARY, makeEntry(A2), PUT)
    t.equal(await store.deleteUrl(A1), 2)
    t.strictSame(await store.lookup(A1), { vary: null, entry: null })
    t.equal(await store.getVariant(A1, variant('en')), null)
    t.equal(await store.getVariant(A1, variant('fr')), null)
    t.equal(await store.deleteUrl(A1), 0, 'nothing left the second time')
    t.not((await store.lookup(A2)).entry, null, 'other URLs stay')
  })

  await t.test(`${name}: markStale sets invalidatedAt on every variant and counts them`, async (t) => {
    const { store, clock } = await make(t)
    const en = makeEntry(A1, { vary: { 'accept-language': 'en' } })
    const fr = makeEntry(A1, { vary: { 'accept-language': 'fr' }, body: Buffer.alloc(70_000, 7) })
    await store.put(A1, variant('en'), en, PUT)
    await store.put(A1, variant('fr'), fr, PUT)
    const at = clock.now() + 1234
    t.equal(await store.markStale(A1, at), 2)
    sameEntry(t, await store.getVariant(A1, variant('en')), { ...en, invalidatedAt: at }, 'en marked, nothing else changed')
    sameEntry(t, await store.getVariant(A1, variant('fr')), { ...fr, invalidatedAt: at }, 'fr marked, body intact')

    t.equal(await store.markStale(A1, at + 10_000), 2)
    t.equal((await store.getVariant(A1, variant('en')))?.invalidatedAt, at, 'an earlier soft purge is kept')
    t.equal(await store.markStale(A1, at - 10), 2)
    t.equal((await store.getVariant(A1, variant('en')))?.invalidatedAt, at - 10, 'an earlier time wins')
    t.equal(await store.markStale(A2, at), 0)
  })

  await t.test(`${name}: entries expire after ttlMs`, async (t) => {
    const harness = await make(t)
    const { store, clock } = harness
    await store.put(A1, NO_VARY, makeEntry(A1), { ttlMs: 5000, maxVariants: 4 })
    await store.put(A1, variant('x'), makeEntry(A1), { ttlMs: 5000, maxVariants: 4 })
    if (harness.assertExpires !== undefined) {
      await harness.assertExpires(t, A1, 5000)
      return
    }
    clock.advance(4999)
    t.not((await store.lookup(A1)).entry, null, 'still there just before')
    clock.advance(1)
    t.strictSame(await store.lookup(A1), { vary: null, entry: null })
    t.equal(await store.getVariant(A1, variant('x')), null)
    t.strictSame(await store.urlsForTag('product'), [])
    t.strictSame(await store.urlsForPrefix('http://a.example', ''), [])
  })

  await t.test(`${name}: urlsForTag lists the URLs stored with the tag`, async (t) => {
    const { store } = await make(t)
    await store.put(A1, NO_VARY, makeEntry(A1, { tags: ['product', 'product:1'] }), PUT)
    await store.put(A2, NO_VARY, makeEntry(A2, { tags: ['product', 'product:2'] }), PUT)
    await store.put(A3, NO_VARY, makeEntry(A3, { tags: ['page'] }), PUT)
    await store.put(B1, variant('v'), makeEntry(B1, { tags: ['product'], vary: { accept: 'x' } }), PUT)
    t.strictSame((await store.urlsForTag('product')).sort(), [A1, A2, B1].sort())
    t.strictSame(await store.urlsForTag('product:2'), [A2])
    t.strictSame(await store.urlsForTag('page'), [A3])
    t.strictSame(await store.urlsForTag('nope'), [])
    t.strictSame(await store.urlsForTag('produc'), [], 'no prefix matching on tags')

    t.equal(await store.deleteUrl(A2), 1)
    const after = await store.urlsForTag('product')
    t.ok(after.includes(A1) && after.includes(B1), 'live entries stay listed')
    for (const url of after) {
      if (url === A2) t.equal(await store.deleteUrl(url), 0, 'a stale member is harmless to a purge')
    }
  })

  await t.test(`${name}: urlsForPrefix lists one origin's URLs under a prefix`, async (t) => {
    const { store } = await make(t)
    for (const url of [A1, A2, A3, B1, A_PORT]) await store.put(url, NO_VARY, makeEntry(url), PUT)
    t.strictSame(await store.urlsForPrefix('http://a.example', 'http://a.example/products/'), [A1, A2].sort())
    t.strictSame(await store.urlsForPrefix('http://a.example', ''), [A3, A1, A2].sort(), 'the whole host')
    t.strictSame(await store.urlsForPrefix('http://a.example', 'http://a.example/products/1'), [A1])
    t.strictSame(await store.urlsForPrefix('http://a.example:8080', ''), [A_PORT], 'a port makes another origin')
    t.strictSame(await store.urlsForPrefix('http://b.example', 'http://b.example/'), [B1])
    t.strictSame(await store.urlsForPrefix('http://c.example', ''), [])
    t.strictSame(await store.urlsForPrefix('http://a.example', 'http://a.example/none'), [])
  })

  await t.test(`${name}: origins lists every origin with stored URLs`, async (t) => {
    const { store } = await make(t)
    for (const url of [A1, A2, B1, A_PORT]) await store.put(url, NO_VARY, makeEntry(url), PUT)
    t.strictSame((await store.origins()).sort(), ['http://a.example', 'http://a.example:8080', 'http://b.example'].sort())
  })

  await t.test(`${name}: many URLs under one tag and one origin are all listed`, async (t) => {
    const { store } = await make(t)
    const urls: CacheKey[] = []
    for (let i = 0; i < 1203; i++) urls.push(key(`http://a.example/items/${String(i).padStart(5, '0')}`))
    await Promise.all(urls.map(async (url) => await store.put(url, NO_VARY, makeEntry(url, { body: Buffer.from('x'), tags: ['bulk'] }), PUT)))
    t.strictSame((await store.urlsForTag('bulk')).sort(), urls)
    t.strictSame(await store.urlsForPrefix('http://a.example', 'http://a.example/items/'), urls)
  })
}
