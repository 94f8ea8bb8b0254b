// The generic circuit breaker: states, counting, probing, the span, and stale results. Failures
// are judged as the reads breaker of a Redis judges them (redis-failures.ts).
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { CircuitBreaker, isStoreBypassed, type BreakerState } from '../../src/store/circuit-breaker.ts'
import { judgeReads } from '../../src/store/redis-failures.ts'

const timedOut = (): Error => new Error('Command timed out')

function breaker (clock: ManualClock, changes: BreakerState[] = []): CircuitBreaker {
  return new CircuitBreaker({
    name: 'test',
    failures: 3,
    cooldown: 1000,
    clock,
    judge: judgeReads,
    onChange: (state) => changes.push(state)
  })
}

const fail = async (b: CircuitBreaker, err: Error = timedOut()): Promise<unknown> => await b.run(async () => { throw err }).catch((e: unknown) => e)
const ok = async (b: CircuitBreaker): Promise<unknown> => await b.run(async () => 'ok').catch((e: unknown) => e)

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
  const b = new CircuitBreaker({ name: 'test', failures: 3, cooldown: 1000, span: 50, clock, judge: judgeReads })
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

t.test('a call that throws instead of rejecting is counted and rejects, never throws', async (t) => {
  const clock = new ManualClock()
  const b = breaker(clock)
  for (let i = 0; i < 3; i++) {
    const p = b.run(() => { throw timedOut() })
    t.ok(p instanceof Promise)
    await t.rejects(p, /timed out/)
  }
  t.equal(b.state, 'open')
  t.ok(isStoreBypassed(await b.run(async () => 'x').catch((e: unknown) => e)), 'the refusal is a rejection too')
})

t.test('a judge that calls a failure neutral or a success leaves the breaker closed', async (t) => {
  const clock = new ManualClock()
  const neutral = new CircuitBreaker({ name: 'n', failures: 1, cooldown: 1000, clock, judge: () => 'neutral' })
  const success = new CircuitBreaker({ name: 's', failures: 1, cooldown: 1000, clock, judge: () => 'success' })
  for (const b of [neutral, success]) {
    for (let i = 0; i < 5; i++) await b.run(async () => { throw new Error('x') }).catch(() => undefined)
    t.equal(b.state, 'closed', b.name)
  }
})

t.test('admit and end (for callers that chain on the call themselves) count exactly as run does', async (t) => {
  const clock = new ManualClock()
  const changes: BreakerState[] = []
  const b = breaker(clock, changes)
  const early = b.admit()
  for (let i = 0; i < 2; i++) b.end(b.admit(), timedOut())
  b.end(b.admit(), new RangeError('bad input'))
  t.equal(b.state, 'closed', 'two failures and a neutral end')
  b.end(b.admit(), timedOut())
  t.equal(b.state, 'open', 'the third failure opens it')
  t.throws(() => b.admit(), { name: 'StoreBypassedError' }, 'an open breaker refuses to admit')
  clock.advance(1000)
  const probe = b.admit()
  t.equal(b.state, 'half-open', 'the first admission after the cool-down is the probe')
  t.throws(() => b.admit(), { name: 'StoreBypassedError' }, 'one probe at a time')
  b.end(early, timedOut())
  t.equal(b.state, 'half-open', 'the end of a call admitted before the opening does not count')
  b.end(probe, undefined)
  t.equal(b.state, 'closed', 'the probe succeeded')
  b.end(b.admit(), timedOut())
  b.end(b.admit(), undefined)
  b.end(b.admit(), timedOut())
  b.end(b.admit(), timedOut())
  t.equal(b.state, 'closed', 'a success resets the count')
  t.same(changes, ['open', 'half-open', 'closed'])
})
