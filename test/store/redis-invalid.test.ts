/**
 * Values in Redis are untrusted: each field of a stored value corrupted raw (as a damaged or
 * hostile writer would leave it) reads as a miss, never as a crash, and is deleted and reported.
 */
import { once } from 'node:events'
import t from 'tap'
import { encodeEntry } from '../../src/cache/entry-codec.ts'
import { ManualClock } from '../../src/clock.ts'
import { createRedisClient, RedisStore } from '../../src/store/redis.ts'
import { urlKeys } from '../../src/store/redis-keys.ts'
import type { InvalidEntry } from '../../src/store/store.ts'
import { CORRUPTIONS } from '../helpers/corrupt.ts'
import { startRedis } from '../helpers/redis.ts'
import { key, makeEntry, PUT, sameEntry, variant } from './contract.ts'

const NO_VARY = variant('')
const A = key('http://a.example/products/1')

const server = await startRedis(t)
const client = createRedisClient({ url: server.url, commandTimeout: 2000 })
client.on('error', () => {})
t.teardown(() => client.disconnect())
if (client.status !== 'ready') await once(client, 'ready')
const raw = server.client()
let stores = 0

function storeWith (writeClient = client): { store: RedisStore, keyPrefix: string, next: () => Promise<InvalidEntry>, all: InvalidEntry[] } {
  const keyPrefix = `inv${++stores}:`
  const store = new RedisStore({ client, writeClient, keyPrefix, clock: new ManualClock() })
  const queue: InvalidEntry[] = []
  const waiting: ((e: InvalidEntry) => void)[] = []
  const all: InvalidEntry[] = []
  store.onInvalidEntry((e) => {
    all.push(e)
    const w = waiting.shift()
    if (w !== undefined) w(e)
    else queue.push(e)
  })
  const next = async (): Promise<InvalidEntry> => {
    const e = queue.shift()
    return e ?? await new Promise((resolve) => waiting.push(resolve))
  }
  return { store, keyPrefix, next, all }
}

for (const c of CORRUPTIONS) {
  await t.test(`a stored value with ${c.name} is a miss, is deleted and is reported as ${c.problem}`, async (t) => {
    const { store, keyPrefix, next } = storeWith()
    await store.put(A, NO_VARY, makeEntry(A), PUT)
    const keys = urlKeys(keyPrefix, A)
    const good = await raw.getBuffer(keys.entry(NO_VARY))
    if (good === null) throw new Error('the put wrote nothing')
    await raw.set(keys.entry(NO_VARY), c.corrupt(good), 'KEEPTTL')

    let lookup
    await t.resolves(async () => { lookup = await store.lookup(A) }, 'the read does not throw')
    t.strictSame(lookup, { vary: [], entry: null }, 'read as absent')
    t.strictSame(await next(), { url: A, variant: NO_VARY, problem: c.problem, store: 'redis', deleted: true })
    t.equal(await raw.exists(keys.entry(NO_VARY), keys.vary, keys.variants), 0, 'the value and the URL\'s records are deleted')

    await store.put(A, NO_VARY, makeEntry(A), PUT)
    sameEntry(t, (await store.lookup(A)).entry, makeEntry(A), 'a new put is served again')
  })
}

await t.test('a refused value is read as a miss each time until it is gone, but deleted and reported once', async (t) => {
  const { store, keyPrefix, next, all } = storeWith()
  await store.put(A, NO_VARY, makeEntry(A), PUT)
  const keys = urlKeys(keyPrefix, A)
  await raw.set(keys.entry(NO_VARY), encodeEntry(makeEntry(A, { status: 700 })), 'KEEPTTL')
  const [first, second, third] = await Promise.all([store.lookup(A), store.lookup(A), store.getVariant(A, NO_VARY)])
  t.strictSame([first.entry, second.entry, third], [null, null, null], 'every read is a miss')
  t.match(await next(), { problem: 'status' })
  // Reads and delete share one connection: a put and a read after the report flush it, so a
  // second delete's report would have arrived by now.
  await store.put(A, NO_VARY, makeEntry(A), PUT)
  t.not((await store.lookup(A)).entry, null)
  t.equal(all.length, 1, 'one delete, one report, for three reads of one value')
})

await t.test('a refused value replaced by a put before its delete ran is kept', async (t) => {
  // The delete goes on the write connection; a BLPOP holds that connection until the test
  // has replaced the value, so the delete runs after the replacement, deterministically.
  const writer = createRedisClient({ url: server.url, commandTimeout: undefined })
  writer.on('error', () => {})
  t.teardown(() => writer.disconnect())
  if (writer.status !== 'ready') await once(writer, 'ready')
  const { store, keyPrefix, next } = storeWith(writer)
  const keys = urlKeys(keyPrefix, A)
  await raw.set(keys.vary, '[]')
  await raw.set(keys.entry(NO_VARY), encodeEntry(makeEntry(A, { headers: { a: 'x\r\ny' } })))
  const gate = `${keyPrefix}gate`
  const held = writer.blpop(gate, 0)
  t.equal((await store.lookup(A)).entry, null)
  const replacement = encodeEntry(makeEntry(A))
  await raw.set(keys.entry(NO_VARY), replacement)
  await raw.lpush(gate, 'go')
  await held
  t.match(await next(), { problem: 'header-value' })
  t.ok((await raw.getBuffer(keys.entry(NO_VARY)))?.equals(replacement), 'the newer value is still there')
  sameEntry(t, (await store.lookup(A)).entry, makeEntry(A))
})

await t.test('a Vary record naming something other than field names is read as nothing recorded', async (t) => {
  const { store, keyPrefix } = storeWith()
  const keys = urlKeys(keyPrefix, A)
  for (const record of ['["accept\\r\\nx"]', '["__proto__"]', '[1]', '{"a":1}', 'not json']) {
    await raw.set(keys.vary, record)
    t.strictSame(await store.lookup(A), { vary: null, entry: null }, record)
  }
})
