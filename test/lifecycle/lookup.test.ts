// Finding the stored response for a request, on a memory store: the variant the request
// selects, verified against the URL and the variant values it was stored for.
import t from 'tap'
import type { VariantId } from '../../src/cache/key.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import { LANGUAGE_ALIAS, variantId } from '../../src/cache/vary.ts'
import { Finder } from '../../src/lifecycle/lookup.ts'
import type { Store } from '../../src/store/store.ts'
import { key, parts } from './parts.ts'

function entry (url: string, vary: Record<string, string | null>, body: string, at = 0): CacheEntry {
  return { url: key(url), status: 200, headers: Object.keys(vary).length > 0 ? { vary: Object.keys(vary).join(', ') } : {}, body: Buffer.from(body), requestTime: at, responseTime: at, initialAge: 0, freshness: 60_000, staleWhileRevalidate: 0, staleIfError: 0, vary, tags: [], mustRevalidate: false, noCache: false, invalidatedAt: 0 }
}

t.test('the entry of the variant the forwarded headers select is found; another variant\'s is not', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  const finder = new Finder({ store: p.store, clock: p.clock, onStoreError: () => {} })
  const req = p.request('/a', { 'accept-language': 'en' })
  const en = { 'accept-language': 'en' }
  await p.store.put(req.key, variantId(en), entry('http://gateway.test/a', en, 'english', p.clock.now()), { ttlMs: 60_000, maxVariants: 4 })
  const found = await finder.find(req)
  t.equal(found.entry?.body.toString(), 'english')
  t.same(found.vary, ['accept-language'])
  const fr = await finder.find(p.request('/a', { 'accept-language': 'fr' }))
  t.equal(fr.entry, null)
  t.equal(fr.variant, variantId({ 'accept-language': 'fr' }))
})

t.test('an entry a store returns for another URL or other variant values is never an answer', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  // Hostile or corrupt store contents (the stores refuse such a put themselves): the key's
  // slot answers with another URL's response, or with a variant recorded for other values.
  const answers: Record<string, CacheEntry> = {
    '/b': entry('http://gateway.test/secret', {}, 'secret', p.clock.now()),
    '/c': entry('http://gateway.test/c', { 'accept-language': 'fr' }, 'french', p.clock.now())
  }
  const hostile: Pick<Store, 'lookup' | 'getVariant'> = {
    lookup: async (url) => {
      const path = new URL(url).pathname
      return path === '/b' ? { vary: [], entry: answers['/b'] ?? null } : { vary: ['accept-language'], entry: null }
    },
    getVariant: async () => answers['/c'] ?? null
  }
  const finder = new Finder({ store: hostile, clock: p.clock, onStoreError: () => {} })
  t.equal((await finder.find(p.request('/b'))).entry, null, 'another URL\'s entry')
  t.equal((await finder.find(p.request('/c', { 'accept-language': 'en' }))).entry, null, 'another variant\'s entry')
})

t.test('a store that fails is a miss named store-unavailable, and the failure is reported', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  const errors: string[] = []
  const failing: Pick<Store, 'lookup' | 'getVariant'> = {
    lookup: async () => { throw Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }) },
    getVariant: async (_url, _variant: VariantId) => null
  }
  const finder = new Finder({ store: failing, clock: p.clock, onStoreError: (op) => errors.push(op) })
  const found = await finder.find(p.request('/c'))
  t.same([found.entry, found.storeDetail], [null, 'store-unavailable'])
  t.same(errors, ['lookup'])
  const again = await finder.lookAgain(p.request('/c'), 2)
  t.equal(again.storeDetail, 'store-unavailable', 'looked again twice, still unavailable')
  t.same(errors, ['lookup', 'lookup', 'lookup'])
})

t.test('concurrent second looks at one URL share one store lookup', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  let lookups = 0
  const counting: Pick<Store, 'lookup' | 'getVariant'> = {
    lookup: async (url) => { lookups++; return await p.store.lookup(url) },
    getVariant: async (url, variant) => await p.store.getVariant(url, variant)
  }
  const finder = new Finder({ store: counting, clock: p.clock, onStoreError: () => {} })
  await Promise.all(Array.from({ length: 10 }, async () => await finder.lookAgain(p.request('/d'))))
  t.equal(lookups, 1)
  await finder.lookAgain(p.request('/d'))
  t.equal(lookups, 2, 'a later look asks again')
})

t.test('a request whose variant is missing is answered from its first language\'s alias, named as that variant', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  const finder = new Finder({ store: p.store, clock: p.clock, onStoreError: () => {} })
  const alias = { 'accept-language': 'de', [LANGUAGE_ALIAS]: 'de' }
  const stored = { ...entry('http://gateway.test/l', alias, 'deutsch', p.clock.now()), headers: { vary: 'accept-language', 'content-language': 'de' } }
  await p.store.put(key('http://gateway.test/l'), variantId(alias), stored, { ttlMs: 60_000, maxVariants: 4 })
  t.same((await p.store.lookup(key('http://gateway.test/l'))).vary, ['accept-language'], 'the alias leaves the URL\'s Vary record as it is')
  const found = await finder.find(p.request('/l', { 'accept-language': 'fr;q=0.5, de' }))
  t.equal(found.entry?.body.toString(), 'deutsch')
  t.equal(found.variant, variantId(alias), 'revalidation and refresh address the alias')
  t.same(found.values, alias)
  t.equal((await finder.find(p.request('/l', { 'accept-language': 'de' }))).entry?.body.toString(), 'deutsch', 'Accept-Language: de without its own variant too')
  const off = parts(t, 'http://127.0.0.1:9', { languageSelection: false })
  const offFinder = new Finder({ store: p.store, clock: p.clock, onStoreError: () => {} })
  const missed = await offFinder.find(off.request('/l', { 'accept-language': 'fr;q=0.5, de' }))
  t.equal(missed.entry, null, 'not with languageSelection: false')
  t.equal(missed.variant, variantId({ 'accept-language': 'de,fr;q=0.5' }), 'the request\'s own variant')
})

t.test('the origin\'s answer to the first language alone comes before the alias; an alias is never read as that answer', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  const finder = new Finder({ store: p.store, clock: p.clock, onStoreError: () => {} })
  const url = key('http://gateway.test/l')
  const de = { 'accept-language': 'de' }
  const alias = { ...de, [LANGUAGE_ALIAS]: 'de' }
  const headers = { vary: 'accept-language', 'content-language': 'de' }
  const options = { ttlMs: 60_000, maxVariants: 4 }
  await p.store.put(url, variantId(alias), { ...entry('http://gateway.test/l', alias, 'alias', p.clock.now()), headers }, options)
  await p.store.put(url, variantId(de), { ...entry('http://gateway.test/l', de, 'exact', p.clock.now()), headers }, options)
  const found = await finder.find(p.request('/l', { 'accept-language': 'fr;q=0.5, de' }))
  t.equal(found.entry?.body.toString(), 'exact')
  t.equal(found.variant, variantId(de))
  // Hostile store data: an alias (its values marked) in the slot of Accept-Language: de.
  await p.store.put(url, variantId(de), { ...entry('http://gateway.test/l', alias, 'alias in the exact slot', p.clock.now()), headers }, options)
  t.equal((await finder.find(p.request('/l', { 'accept-language': 'de' }))).entry?.body.toString(), 'alias', 'not the exact answer: Accept-Language: de falls back to the alias itself')
  t.equal((await finder.find(p.request('/l', { 'accept-language': 'it;q=0.5, de' }))).entry?.body.toString(), 'alias')
})

t.test('a failed look at the first language\'s variant is a miss named store-unavailable, reported', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  const errors: string[] = []
  const asked: VariantId[] = []
  const failing: Pick<Store, 'lookup' | 'getVariant'> = {
    lookup: async () => ({ vary: ['accept-language'], entry: null }),
    getVariant: async (_url, variant) => {
      asked.push(variant)
      if (asked.length > 1) throw Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })
      return null
    }
  }
  const finder = new Finder({ store: failing, clock: p.clock, onStoreError: (op) => errors.push(op) })
  const found = await finder.find(p.request('/l', { 'accept-language': 'fr;q=0.5, de' }))
  t.same([found.entry, found.storeDetail], [null, 'store-unavailable'])
  t.equal(found.variant, variantId({ 'accept-language': 'de,fr;q=0.5' }), 'the request\'s own variant')
  t.same(asked, [variantId({ 'accept-language': 'de,fr;q=0.5' }), variantId({ 'accept-language': 'de' })], 'no look at the alias after a failure')
  t.same(errors, ['get'])
})
