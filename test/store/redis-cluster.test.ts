import { once } from 'node:events'
import t from 'tap'
import type { Test } from 'tap'
import { Redis } from 'ioredis'
import type { Cluster } from 'ioredis'
import type { CacheKey } from '../../src/cache/key.ts'
import { ManualClock } from '../../src/clock.ts'
import { createRedisClient, RedisStore } from '../../src/store/redis.ts'
import { originIndexKeys, originsIndexKeys, tagIndexKeys, urlKeys } from '../../src/store/redis-keys.ts'
import { startRedisCluster } from '../helpers/redis.ts'
import { key, makeEntry, PUT, storeContract, variant } from './contract.ts'

const cluster = await startRedisCluster(t, { masters: 3 })
const client = createRedisClient({ cluster: cluster.nodes, commandTimeout: 2000 })
client.on('error', () => {})
t.teardown(() => client.disconnect())
if (client.status !== 'ready') await once(client as Cluster, 'ready')

/** One plain connection per master, for assertions. */
const nodes = cluster.nodes.map((node) => {
  const [host, port] = node.split(':')
  const c = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 })
  c.on('error', () => {})
  return c
})
t.teardown(() => { for (const c of nodes) c.disconnect() })

/** Every key under `prefix` on one master, with its PTTL (SCAN in tests only; the store never scans). */
async function nodeKeys (node: Redis, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  let cursor = '0'
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    for (const k of keys) out.set(k, await node.pttl(k))
  } while (cursor !== '0')
  return out
}

/** Every key under `prefix` on every master, with its PTTL. */
async function allKeys (prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const node of nodes) for (const [k, ttl] of await nodeKeys(node, prefix)) out.set(k, ttl)
  return out
}

const slot = async (k: string): Promise<number> => Number(await nodes[0]?.cluster('KEYSLOT', k))

let stores = 0
const storeWith = () => {
  const clock = new ManualClock()
  const keyPrefix = `c${++stores}:`
  return { store: new RedisStore({ client, keyPrefix, clock }), clock, keyPrefix }
}

await storeContract(t, 'redis cluster', () => {
  const { store, clock, keyPrefix } = storeWith()
  return Promise.resolve({
    store,
    clock,
    assertExpires: async (t: Test, _url: CacheKey, ttlMs: number) => {
      const ttls = await allKeys(keyPrefix)
      t.ok(ttls.size >= 7, 'the store wrote its keys')
      for (const [k, ttl] of ttls) {
        if (!(ttl > ttlMs - 1000 && ttl <= ttlMs)) t.fail(`${k} has PTTL ${ttl}`)
      }
      t.pass(`${ttls.size} keys have a TTL within ${ttlMs - 1000}..${ttlMs} ms`)
    }
  })
})

await t.test('redis cluster: the keys of one URL share one slot, as do the two keys of an index', async (t) => {
  const { keyPrefix } = storeWith()
  const urls = ['http://a.example/1', 'http://a.example/2?x=1', 'http://b.example/'].map(key)
  const slots = new Set<number>()
  for (const url of urls) {
    const keys = urlKeys(keyPrefix, url)
    const own = await Promise.all([keys.vary, keys.variants, keys.entry(variant('')), keys.entry(variant('abc'))].map(slot))
    t.equal(new Set(own).size, 1, `${url}: one slot`)
    slots.add(own[0] ?? -1)
  }
  t.ok(slots.size > 1, 'different URLs spread over slots')
  for (const index of [tagIndexKeys(keyPrefix, '}odd{tag'), tagIndexKeys(keyPrefix, ''), originIndexKeys(keyPrefix, 'http://a.example'), originsIndexKeys(keyPrefix)]) {
    t.equal(await slot(index.members), await slot(index.expiry), `${index.members}: one slot`)
  }
})

await t.test('redis cluster: entries spread over the masters and every key has a TTL', async (t) => {
  const { store, keyPrefix } = storeWith()
  for (let i = 0; i < 60; i++) {
    const url = key(`http://a.example/items/${i}`)
    await store.put(url, variant(i % 2 === 0 ? '' : 'v'), makeEntry(url, { vary: i % 2 === 0 ? {} : { accept: 'x' }, tags: [`t${i % 7}`, '}odd{tag'] }), PUT)
  }
  const ttls = await allKeys(keyPrefix)
  t.ok(ttls.size >= 60 * 3, 'vary, variant set and entry per URL, plus indexes')
  for (const [k, ttl] of ttls) {
    if (!(ttl > 0 && ttl <= PUT.ttlMs)) t.fail(`${k} has PTTL ${ttl}`)
  }
  const perNode = await Promise.all(nodes.map(async (node) => (await nodeKeys(node, keyPrefix)).size))
  t.ok(perNode.every((n) => n > 0), `every master holds keys (${perNode.join(', ')})`)
  t.equal((await store.urlsForTag('}odd{tag')).length, 60)
  t.equal((await store.urlsForTag('t3')).length, 9)
})
