// Fill and refresh locks, local and on a real Redis: one holder, released only by its token,
// and acquiring again with the holder's token answers "yours" (a retry after a late reply).
import t from 'tap'
import { Redis } from 'ioredis'
import { ManualClock } from '../../src/clock.ts'
import { normalizeAbsoluteUrl, type CacheKey } from '../../src/cache/key.ts'
import { LocalLocks, type Locks } from '../../src/coordination/locks.ts'
import { RedisLocks } from '../../src/coordination/redis.ts'
import { startRedis } from '../helpers/redis.ts'

function key (url: string): CacheKey {
  const n = normalizeAbsoluteUrl(url)
  if (!n.ok) throw new Error(n.reason)
  return n.key
}

const redis = await startRedis(t)

function suite (name: string, make: () => { locks: Locks, expire: () => Promise<void> }): void {
  t.test(name, async (t) => {
    t.test('a free lock is taken once; a second caller gets null until the holder releases it', async (t) => {
      const { locks } = make()
      const url = key('http://a.example/one')
      const token = await locks.acquire(url, 'fill', '?', 10_000, 'first')
      t.equal(token, 'first')
      t.equal(await locks.acquire(url, 'fill', '?', 10_000, 'second'), null)
      t.equal(await locks.held(url, 'fill', '?'), true)
      t.equal(await locks.release(url, 'fill', '?', 'second'), false, 'another token cannot release it')
      t.equal(await locks.release(url, 'fill', '?', 'first'), true)
      t.equal(await locks.held(url, 'fill', '?'), false)
      t.equal(await locks.acquire(url, 'fill', '?', 10_000, 'second'), 'second')
    })

    t.test('acquiring again with the holder\'s token returns it (a retry learns the first attempt took it)', async (t) => {
      const { locks } = make()
      const url = key('http://a.example/two')
      t.equal(await locks.acquire(url, 'fill', '?', 10_000, 'mine'), 'mine')
      t.equal(await locks.acquire(url, 'fill', '?', 10_000, 'mine'), 'mine')
      t.equal(await locks.acquire(url, 'fill', '?', 10_000, 'theirs'), null)
    })

    t.test('purposes and variants are separate locks', async (t) => {
      const { locks } = make()
      const url = key('http://a.example/three')
      t.ok(await locks.acquire(url, 'fill', '?', 10_000))
      t.ok(await locks.acquire(url, 'refresh', '?', 10_000))
      t.ok(await locks.acquire(url, 'fill', 'v1', 10_000))
    })

    t.test('an expired lock is free again', async (t) => {
      const { locks, expire } = make()
      const url = key('http://a.example/four')
      t.ok(await locks.acquire(url, 'fill', '?', 1000, 'old'))
      await expire()
      t.equal(await locks.held(url, 'fill', '?'), false)
      t.equal(await locks.acquire(url, 'fill', '?', 1000, 'new'), 'new')
    })
  })
}

suite('local locks', () => {
  const clock = new ManualClock()
  return { locks: new LocalLocks(clock), expire: async () => { clock.advance(1001) } }
})

let prefixes = 0
suite('Redis locks', () => {
  const client = new Redis(redis.url)
  t.teardown(() => client.disconnect())
  const prefix = `locks${++prefixes}:`
  return {
    locks: new RedisLocks(client, prefix),
    // Redis keeps its own time: expire every lock of this prefix instead of waiting.
    expire: async () => {
      const keys = await client.keys(`${prefix}*`)
      if (keys.length > 0) await client.del(...keys)
    }
  }
})

t.test('a lock key carries its URL\'s hash tag, as the store\'s keys do (one Redis Cluster slot)', async (t) => {
  const { lockKey } = await import('../../src/coordination/redis.ts')
  const { urlKeys } = await import('../../src/store/redis-keys.ts')
  for (const url of ['http://a.example/', 'https://b.example/x?y=1', 'http://c.example/%E2%82%AC']) {
    const tag = /\{[^}]+\}/.exec(urlKeys('p:', key(url)).vary)?.[0]
    t.ok(tag !== undefined && lockKey('p:', key(url), 'fill', '?').startsWith(`p:${tag}:lock:`), url)
  }
})
