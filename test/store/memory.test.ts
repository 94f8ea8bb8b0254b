import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { key, makeEntry, PUT, storeContract, variant } from './contract.ts'

await storeContract(t, 'memory', () => {
  const clock = new ManualClock()
  return Promise.resolve({ store: new MemoryStore({ maxBytes: 64 * 1024 * 1024, clock }), clock })
})

const NO_VARY = variant('')
const url = (n: number) => key(`http://a.example/items/${n}`)
const entryOf = (n: number, bodyBytes = 1000) => makeEntry(url(n), { body: Buffer.alloc(bodyBytes, n), tags: [`item:${n}`, 'item'] })

await t.test('memory: the byte bound evicts the least recently used entry first', async (t) => {
  const clock = new ManualClock()
  const probe = new MemoryStore({ maxBytes: 1_000_000, clock })
  await probe.put(url(0), NO_VARY, entryOf(0), PUT)
  const one = probe.stats().bytes
  t.ok(one > 1000, `an entry counts its body and more (${one} bytes)`)

  const store = new MemoryStore({ maxBytes: one * 3 + 10, clock })
  for (const n of [1, 2, 3]) await store.put(url(n), NO_VARY, entryOf(n), PUT)
  t.strictSame(store.stats(), { bytes: one * 3, entries: 3 })

  t.not((await store.lookup(url(1))).entry, null, 'reading 1 makes 2 the least recently used')
  await store.put(url(4), NO_VARY, entryOf(4), PUT)
  t.equal((await store.lookup(url(2))).entry, null, '2 was evicted')
  for (const n of [1, 3, 4]) t.not((await store.lookup(url(n))).entry, null, `${n} stays`)
  t.ok(store.stats().bytes <= one * 3 + 10)
  t.strictSame(await store.urlsForTag('item:2'), [], 'eviction cleans the tag index')
  t.strictSame(await store.urlsForTag('item'), [url(1), url(3), url(4)])
  t.notOk((await store.urlsForPrefix('http://a.example', '')).includes(url(2)), 'and the origin index')

  await store.put(url(5), NO_VARY, entryOf(5, one * 2), PUT)
  t.not((await store.lookup(url(5))).entry, null)
  t.equal(store.stats().entries, 1, 'a big entry pushes out as many as it needs')
})

await t.test('memory: an entry larger than maxBytes is not stored and evicts nothing', async (t) => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 10_000, clock })
  await store.put(url(1), NO_VARY, entryOf(1), PUT)
  await store.put(url(2), NO_VARY, entryOf(2, 20_000), PUT)
  t.strictSame(await store.lookup(url(2)), { vary: null, entry: null })
  t.not((await store.lookup(url(1))).entry, null)
  t.equal(store.stats().entries, 1)

  await store.put(url(1), NO_VARY, entryOf(1, 20_000), PUT)
  t.equal((await store.lookup(url(1))).entry, null, 'a too-big replacement drops the old copy rather than leave it current')
  t.strictSame(store.stats(), { bytes: 0, entries: 0 })
})

await t.test('memory: bytes and indexes return to zero when everything goes', async (t) => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 1_000_000, clock })
  for (let n = 0; n < 20; n++) {
    await store.put(url(n), variant(`v${n % 3}`), makeEntry(url(n), { vary: { accept: String(n) }, tags: ['t'] }), { ttlMs: 1000 + n, maxVariants: 2 })
  }
  await store.deleteUrl(url(0))
  await store.deleteVariant(url(1), variant('v1'))
  clock.advance(10_000)
  t.strictSame(await store.origins(), [])
  t.strictSame(await store.urlsForTag('t'), [])
  t.strictSame(store.stats(), { bytes: 0, entries: 0 })
})

await t.test('memory: indexes are exact after deleteUrl', async (t) => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 1_000_000, clock })
  await store.put(url(1), NO_VARY, entryOf(1), PUT)
  await store.put(url(2), NO_VARY, entryOf(2), PUT)
  await store.deleteUrl(url(1))
  t.strictSame(await store.urlsForTag('item'), [url(2)])
  t.strictSame(await store.urlsForPrefix('http://a.example', ''), [url(2)])
  await store.deleteUrl(url(2))
  t.strictSame(await store.origins(), [])
})

await t.test('memory: stored entries are frozen copies', async (t) => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 1_000_000, clock })
  await store.put(url(1), NO_VARY, entryOf(1), PUT)
  const entry = (await store.lookup(url(1))).entry
  t.ok(entry !== null && Object.isFrozen(entry) && Object.isFrozen(entry.headers) && Object.isFrozen(entry.tags))
  t.throws(() => { if (entry !== null) entry.status = 500 }, TypeError)
  const derived = entry === null ? null : { ...entry, status: 304 }
  t.equal(derived?.status, 304, 'a spread copy is a plain object')
})

await t.test('memory: the constructor rejects a bad maxBytes', (t) => {
  t.throws(() => new MemoryStore({ maxBytes: 0, clock: new ManualClock() }), RangeError)
  t.throws(() => new MemoryStore({ maxBytes: Number.NaN, clock: new ManualClock() }), RangeError)
  t.end()
})

await t.test('memory: a body changed through an object a read handed out is refused by its seal, removed and reported', async (t) => {
  const store = new MemoryStore({ maxBytes: 1_000_000, clock: new ManualClock() })
  const reports: string[] = []
  store.onInvalidEntry((e) => reports.push(`${e.url} ${e.problem} ${e.store} ${String(e.deleted)}`))
  await store.put(url(1), NO_VARY, entryOf(1), PUT)
  const read = (await store.lookup(url(1))).entry
  if (read === null) throw new Error('the put was not stored')
  read.body[0] = 0xee // what callers must never do: the bytes cannot be frozen
  t.equal(store.peek(url(1)), undefined, 'the fast path\'s synchronous read refuses it too')
  t.strictSame(reports, [`${url(1)} checksum memory true`])
  t.strictSame(await store.lookup(url(1)), { vary: null, entry: null }, 'removed')
  t.strictSame(store.stats(), { bytes: 0, entries: 0 })
  t.strictSame(await store.urlsForTag('item'), [], 'and out of its indexes')
})
