// The circuit breakers in front of Redis: states, counting, probing, and which failures count.
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { CircuitBreaker, isStoreBypassed, redisFailureKind, StoreBypassedError, StoreGuard, type BreakerState } from '../../src/store/breaker.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import type { CacheKey, VariantId } from '../../src/cache/key.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { Store } from '../../src/store/store.ts'
import { storeContract } from './contract.ts'

await storeContract(t, 'memory behind a closed breaker', () => {
  const clock = new ManualClock()
  const guard = new StoreGuard({ failures: 5, cooldown: 2000, clock })
  return Promise.resolve({ store: guard.store(new MemoryStore({ maxBytes: 64 * 1024 * 1024, clock })), clock })
})

const replyError = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' })
const timedOut = (): Error => new Error('Command timed out')

function breaker (clock: ManualClock, changes: BreakerState[] = []): CircuitBreaker {
  return new CircuitBreaker({
    name: 'test',
    failures: 3,
    cooldown: 1000,
    clock,
    judge: (kind) => kind === 'down' ? 'failure' : kind === 'other' || kind === 'bypassed' ? 'neutral' : 'success',
    onChange: (state) => changes.push(state)
  })
}

const fail = async (b: CircuitBreaker, err: Error = timedOut()): Promise<unknown> => await b.run(async () => { throw err }).catch((e: unknown) => e)
const ok = async (b: CircuitBreaker): Promise<unknown> => await b.run(async () => 'ok').catch((e: unknown) => e)

t.test('redisFailureKind tells an unreachable Redis from a refusing one', async (t) => {
  const rows: Array<[unknown, string]> = [
    [timedOut(), 'down'],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'down'],
    [new Error('Connection is closed.'), 'down'],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'down'],
    [replyError("OOM command not allowed when used memory > 'maxmemory'."), 'refused'],
    [replyError("READONLY You can't write against a read only replica."), 'refused'],
    [replyError('MISCONF Redis is configured to save RDB snapshots'), 'refused'],
    [replyError('LOADING Redis is loading the dataset in memory'), 'down'],
    [replyError('CLUSTERDOWN The cluster is down'), 'down'],
    [replyError('ERR user_script:1: Script attempted to access a non local key'), 'answered'],
    [new RangeError('ttlMs must be positive'), 'other'],
    [new TypeError('unexpected Redis reply'), 'other'],
    [new StoreBypassedError('x'), 'bypassed'],
    ['a string', 'down']
  ]
  for (const [err, kind] of rows) t.equal(redisFailureKind(err), kind, `${String((err as Error).message ?? err)} is ${kind}`)
})

t.test('the breaker opens after the configured consecutive failures and bypasses calls without making them', async (t) => {
  const clock = new ManualClock()
  const changes: BreakerState[] = []
  const b = breaker(clock, changes)
  await fail(b)
  await fail(b)
  t.equal(b.state, 'closed', 'two failures: still closed')
  await ok(b)
  await fail(b)
  await fail(b)
  t.equal(b.state, 'closed', 'a success in between resets the count')
  await fail(b)
  t.equal(b.state, 'open', 'the third consecutive failure opens it')
  let called = false
  const err = await b.run(async () => { called = true }).catch((e: unknown) => e)
  t.ok(isStoreBypassed(err), 'an open breaker rejects with StoreBypassedError')
  t.notOk(called, 'and never makes the call')
  t.same(changes, ['open'])
})

t.test('after the cool-down one probe goes through: success closes, failure reopens for another cool-down', async (t) => {
  const clock = new ManualClock()
  const changes: BreakerState[] = []
  const b = breaker(clock, changes)
  for (let i = 0; i < 3; i++) await fail(b)
  clock.advance(999)
  t.ok(isStoreBypassed(await ok(b)), 'still open before the cool-down ends')
  clock.advance(1)
  // The probe is in flight: every other call is bypassed until it settles.
  let finish: (v: string) => void = () => undefined
  const probe = b.run(async () => await new Promise<string>((resolve) => { finish = resolve }))
  t.equal(b.state, 'half-open')
  t.ok(isStoreBypassed(await ok(b)), 'a second call during the probe is bypassed')
  finish('pong')
  t.equal(await probe, 'pong')
  t.equal(b.state, 'closed', 'a successful probe closes the breaker')
  t.equal(await ok(b), 'ok')

  for (let i = 0; i < 3; i++) await fail(b)
  clock.advance(1000)
  await fail(b)
  t.equal(b.state, 'open', 'a failed probe reopens it')
  t.ok(isStoreBypassed(await ok(b)), 'for a whole new cool-down')
  clock.advance(1000)
  t.equal(await ok(b), 'ok')
  t.same(changes, ['open', 'half-open', 'closed', 'open', 'half-open', 'open', 'half-open', 'closed'])
})

t.test('failures of calls admitted before the breaker opened or closed do not count again', async (t) => {
  const clock = new ManualClock()
  const b = breaker(clock)
  const slow: Array<(err: Error) => void> = []
  const inFlight = Array.from({ length: 5 }, async () => await b.run(async () => await new Promise((_resolve, reject) => { slow.push(reject) })).catch(() => undefined))
  for (let i = 0; i < 3; i++) await fail(b)
  t.equal(b.state, 'open')
  clock.advance(1000)
  t.equal(await ok(b), 'ok', 'the probe closes it')
  for (const reject of slow) reject(timedOut())
  await Promise.all(inFlight)
  t.equal(b.state, 'closed', 'five late failures from before the opening do not reopen it')
})

t.test('a probe that never settles does not keep the breaker half-open for ever', async (t) => {
  const clock = new ManualClock()
  const b = breaker(clock)
  for (let i = 0; i < 3; i++) await fail(b)
  clock.advance(1000)
  b.run(async () => await new Promise(() => undefined)).catch(() => undefined)
  t.equal(b.state, 'half-open')
  clock.advance(1000)
  t.equal(await ok(b), 'ok', 'another probe is let through a cool-down later')
  t.equal(b.state, 'closed')
})

t.test('a probe overtaken by a later one does not reopen the breaker the later one closed', async (t) => {
  const clock = new ManualClock()
  const b = breaker(clock)
  for (let i = 0; i < 3; i++) await fail(b)
  clock.advance(1000)
  let failFirst: (err: Error) => void = () => undefined
  const first = b.run(async () => await new Promise((_resolve, reject) => { failFirst = reject })).catch(() => undefined)
  clock.advance(1000)
  t.equal(await ok(b), 'ok', 'a second probe a cool-down later succeeds')
  t.equal(b.state, 'closed')
  failFirst(timedOut())
  await first
  t.equal(b.state, 'closed', 'the first probe failing late changes nothing')
})

t.test('bad input is neither a failure nor a success', async (t) => {
  const clock = new ManualClock()
  const b = breaker(clock)
  await fail(b)
  await fail(b)
  await fail(b, new RangeError('bad'))
  t.equal(b.state, 'closed')
  await fail(b)
  t.equal(b.state, 'open', 'the count survived the neutral call')
})

t.test('a burst of failures at one instant (an event-loop stall) does not open a breaker with a span', async (t) => {
  const clock = new ManualClock()
  const b = new CircuitBreaker({ name: 'test', failures: 3, cooldown: 1000, span: 50, clock, judge: (kind) => kind === 'down' ? 'failure' : 'success' })
  for (let i = 0; i < 20; i++) await fail(b)
  t.equal(b.state, 'closed', 'twenty timeouts in the same millisecond are one event')
  await ok(b)
  clock.advance(60)
  await fail(b)
  t.equal(b.state, 'closed', 'a success started a new run')
  clock.advance(30)
  await fail(b)
  await fail(b)
  t.equal(b.state, 'closed', 'three failures over 30 ms: not yet')
  clock.advance(20)
  await fail(b)
  t.equal(b.state, 'open', 'failures still coming 50 ms after the first: an outage')
})

t.test('options are checked', async (t) => {
  const clock = new ManualClock()
  const judge = (): 'failure' => 'failure'
  t.throws(() => new CircuitBreaker({ name: 'x', failures: 0, cooldown: 1, clock, judge }), RangeError)
  t.throws(() => new CircuitBreaker({ name: 'x', failures: 1.5, cooldown: 1, clock, judge }), RangeError)
  t.throws(() => new CircuitBreaker({ name: 'x', failures: 1, cooldown: -1, clock, judge }), RangeError)
  t.throws(() => new CircuitBreaker({ name: 'x', failures: 1, cooldown: 1, span: Number.NaN, clock, judge }), RangeError)
})

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
