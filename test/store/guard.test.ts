// The guard of one Redis: its two breakers in front of a store, locks and bus, the store
// contract behind a closed breaker, and the deadline of each kind of call.
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { isStoreBypassed } from '../../src/store/circuit-breaker.ts'
import { ReadTimeoutError } from '../../src/store/deadlines.ts'
import { StoreGuard } from '../../src/store/guard.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import type { CacheKey, VariantId } from '../../src/cache/key.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { Store } from '../../src/store/store.ts'
import { storeContract } from './contract.ts'

// The sweeper's interval is unref'd (a gateway's sockets keep the process alive); here a
// pending call with no socket behind it would let the process exit before its deadline.
const alive = setInterval(() => undefined, 60_000)
t.teardown(() => { clearInterval(alive) })

await storeContract(t, 'memory behind a closed breaker', () => {
  const clock = new ManualClock()
  const guard = new StoreGuard({ failures: 5, cooldown: 2000, clock })
  return Promise.resolve({ store: guard.store(new MemoryStore({ maxBytes: 64 * 1024 * 1024, clock })), clock })
})

const replyError = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' })
const timedOut = (): Error => new Error('Command timed out')

/** A store whose every call fails with `err` while `failing` is set. */
function flaky (inner: Store): { store: Store, fail: (err: Error | undefined) => void, calls: () => number } {
  let err: Error | undefined
  let calls = 0
  const wrap = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    calls++
    if (err !== undefined) throw err
    return await f(...a)
  }
  const store: Store = {
    kind: 'redis',
    lookup: wrap(inner.lookup.bind(inner)),
    getVariant: wrap(inner.getVariant.bind(inner)),
    put: wrap(inner.put.bind(inner)),
    deleteVariant: wrap(inner.deleteVariant.bind(inner)),
    deleteUrl: wrap(inner.deleteUrl.bind(inner)),
    markStale: wrap(inner.markStale.bind(inner)),
    urlsForTag: wrap(inner.urlsForTag.bind(inner)),
    urlsForPrefix: wrap(inner.urlsForPrefix.bind(inner)),
    origins: wrap(inner.origins.bind(inner)),
    close: async () => await inner.close()
  }
  return { store, fail: (e) => { err = e }, calls: () => calls }
}

const URL_A = 'http://h/a' as CacheKey
const entry = (url: CacheKey): CacheEntry => ({
  url,
  status: 200,
  headers: { 'cache-control': 'max-age=60' },
  body: Buffer.from('a'),
  requestTime: 0,
  responseTime: 0,
  initialAge: 0,
  freshness: 60_000,
  staleWhileRevalidate: 0,
  staleIfError: 0,
  tags: [],
  mustRevalidate: false,
  noCache: false,
  invalidatedAt: 0,
  vary: {}
})

t.test('a full Redis (OOM) opens only the write breaker: lookups keep being answered, puts are skipped', async (t) => {
  const clock = new ManualClock(0)
  const { store: inner, fail, calls } = flaky(new MemoryStore({ maxBytes: 1 << 20, clock }))
  const guard = new StoreGuard({ failures: 2, cooldown: 1000, clock })
  const store = guard.store(inner)
  await store.put(URL_A, '' as VariantId, entry(URL_A), { ttlMs: 60_000, maxVariants: 4 })
  const oom = replyError("OOM command not allowed when used memory > 'maxmemory'.")
  const real = inner.put.bind(inner)
  inner.put = async (...a) => { if (a[0] !== URL_A) throw oom; await real(...a) }
  const other = 'http://h/b' as CacheKey
  for (let i = 0; i < 2; i++) await t.rejects(store.put(other, '' as VariantId, entry(other), { ttlMs: 60_000, maxVariants: 4 }), oom)
  t.same(guard.state, { reads: 'closed', writes: 'open' })
  const before = calls()
  const skipped = await store.put(other, '' as VariantId, entry(other), { ttlMs: 60_000, maxVariants: 4 }).catch((e: unknown) => e)
  t.ok(isStoreBypassed(skipped), 'the next put is refused unsent')
  t.equal(calls(), before, 'nothing reached the store')
  t.equal((await store.lookup(URL_A)).entry?.body.toString(), 'a', 'lookups still answered')
  t.equal(guard.reads.state, 'closed')
  fail(undefined)
})

t.test('an unreachable Redis opens the reads breaker: every store, lock and bus call is bypassed', async (t) => {
  const clock = new ManualClock(0)
  const { store: inner, fail, calls } = flaky(new MemoryStore({ maxBytes: 1 << 20, clock }))
  const guard = new StoreGuard({ failures: 2, cooldown: 1000, clock })
  const store = guard.store(inner)
  let lockCalls = 0
  let published = 0
  const locks = guard.locks({
    acquire: async () => { lockCalls++; throw timedOut() },
    release: async () => { lockCalls++; return true },
    held: async () => { lockCalls++; return false }
  })
  const bus = guard.bus({ publish: async () => { published++ }, subscribe: async () => undefined, onReconnect: () => undefined, close: async () => undefined })
  fail(timedOut())
  await t.rejects(store.lookup(URL_A))
  await t.rejects(locks.acquire(URL_A, 'fill', '', 100))
  t.equal(guard.reads.state, 'open', 'store and lock failures count together')
  const before = calls()
  t.ok(isStoreBypassed(await store.lookup(URL_A).catch((e: unknown) => e)))
  t.ok(isStoreBypassed(await store.deleteUrl(URL_A).catch((e: unknown) => e)))
  t.ok(isStoreBypassed(await locks.release(URL_A, 'fill', '', 'x').catch((e: unknown) => e)))
  t.ok(isStoreBypassed(await bus.publish('c', 'm').catch((e: unknown) => e)))
  t.equal(calls(), before)
  t.equal(lockCalls, 1)
  t.equal(published, 0)
  fail(undefined)
  clock.advance(1000)
  t.same(await store.lookup(URL_A), { vary: null, entry: null }, 'the probe after the cool-down goes through')
  t.same(guard.state, { reads: 'closed', writes: 'closed' })
})

t.test('each kind of call gets its own deadline: a lookup the read timeout, a lock four of them, an index read ten (at least 1 s)', async (t) => {
  const guard = new StoreGuard({ failures: 100, cooldown: 1000, clock: new ManualClock(0), readTimeout: 20 })
  const never = async (): Promise<never> => await new Promise<never>(() => undefined)
  const timed = async (kind: 'quick' | 'lock' | 'slow'): Promise<string> => {
    const err = await guard.call(kind, never).catch((e: unknown) => e)
    t.ok(err instanceof ReadTimeoutError, `${kind} times out`)
    return (err as Error).message
  }
  const [quick, lock, slow] = await Promise.all([timed('quick'), timed('lock'), timed('slow')])
  t.match(quick, /within 20 ms/)
  t.match(lock, /within 200 ms/)
  t.match(slow, /within 1000 ms/)
})

t.test('a lock acquisition whose reply is late is asked again with the same token; a refusal is not', async (t) => {
  const guard = new StoreGuard({ failures: 100, cooldown: 1000, clock: new ManualClock(0), readTimeout: 5 })
  const tokens: string[] = []
  let first = true
  const locks = guard.locks({
    acquire: async (_url, _purpose, _variant, _ttl, token = '') => {
      tokens.push(token)
      if (first) {
        first = false
        return await new Promise<never>(() => undefined)
      }
      return token
    },
    release: async () => true,
    held: async () => false
  })
  const token = await locks.acquire(URL_A, 'fill', '', 1000, 'mine')
  t.equal(token, 'mine')
  t.same(tokens, ['mine', 'mine'], 'asked twice with one token')
  const refusing = guard.locks({ acquire: async () => { tokens.push('refused'); throw replyError('OOM command not allowed') }, release: async () => true, held: async () => false })
  await t.rejects(refusing.acquire(URL_A, 'fill', '', 1000, 'x'), /OOM/)
  t.equal(tokens.filter((x) => x === 'refused').length, 1, 'an answer is final')
})

t.test('a read past its deadline is a failure of the reads breaker: enough of them open it, and the next read is refused unsent', async (t) => {
  const clock = new ManualClock(0)
  const guard = new StoreGuard({ failures: 2, cooldown: 1000, clock, readTimeout: 5 })
  let calls = 0
  const never = async (): Promise<never> => { calls++; return await new Promise<never>(() => undefined) }
  for (const kind of ['quick', 'slow'] as const) {
    const err = await guard.call(kind, never).catch((e: unknown) => e)
    t.ok(err instanceof ReadTimeoutError, `${kind}: timed out`)
  }
  t.same(guard.state, { reads: 'open', writes: 'closed' })
  t.ok(isStoreBypassed(await guard.call('quick', never).catch((e: unknown) => e)))
  t.equal(calls, 2, 'the third read was never made')
  clock.advance(1000)
  t.equal(await guard.call('quick', async () => 'pong'), 'pong', 'the probe after the cool-down answers')
  t.same(guard.state, { reads: 'closed', writes: 'closed' })
  const thrown = await guard.call('quick', () => { throw new TypeError('bad input') }).catch((e: unknown) => e)
  t.ok(thrown instanceof TypeError, 'a read that throws rejects with what it threw')
  t.same(guard.state, { reads: 'closed', writes: 'closed' }, 'and, bad input, counts neither way')
})
