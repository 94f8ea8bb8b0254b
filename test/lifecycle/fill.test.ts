// The cluster fill protocol on its own, with local locks, a local bus and a manual clock: two
// coordinators sharing them stand for two instances sharing a Redis.
import t from 'tap'
import { ManualClock } from '../../src/clock.ts'
import { normalizeAbsoluteUrl, type CacheKey } from '../../src/cache/key.ts'
import { LocalBus } from '../../src/coordination/bus.ts'
import { FillCoordinator, type FillOptions } from '../../src/lifecycle/fill.ts'
import { LocalLocks, type LockPurpose, type Locks } from '../../src/coordination/locks.ts'
import { Tasks } from '../../src/lifecycle/tasks.ts'

function key (url: string): CacheKey {
  const n = normalizeAbsoluteUrl(url)
  if (!n.ok) throw new Error(n.reason)
  return n.key
}

interface Cluster {
  clock: ManualClock
  locks: LocalLocks
  bus: LocalBus
  errors: string[]
  tasks: Tasks
  instance: (options?: Partial<FillOptions>) => Promise<FillCoordinator>
}

function cluster (wait = 5_000): Cluster {
  const clock = new ManualClock()
  const locks = new LocalLocks(clock)
  const bus = new LocalBus()
  const errors: string[] = []
  const tasks = new Tasks()
  return {
    clock,
    locks,
    bus,
    errors,
    tasks,
    instance: async (options = {}) => {
      const c = new FillCoordinator({ locks, bus, channel: 'cg:fill', wait, tasks, onError: (op) => errors.push(op), now: () => clock.now(), ...options })
      await c.start()
      return c
    }
  }
}

const URL_A = key('http://shop.example/a')

t.test('the first miss leads with the lock; concurrent local misses share its answer and do not lead', async (t) => {
  const c = cluster()
  const a = await c.instance()
  const answers = await Promise.all([a.gate(URL_A, '?'), a.gate(URL_A, '?'), a.gate(URL_A, '?')])
  t.equal(answers.filter((x) => x.creator).length, 1, 'one caller asked the lock')
  t.ok(answers.every((x) => x.gate.kind === 'lead'), 'all learn that this instance leads')
  t.equal(await c.locks.held(URL_A, 'fill', '?'), true)
})

t.test('another instance waits for the fill message: stored, then the lock is released', async (t) => {
  const c = cluster()
  const a = await c.instance()
  const b = await c.instance()
  const lead = await a.gate(URL_A, '?')
  if (lead.gate.kind !== 'lead' || lead.gate.token === undefined) throw new Error('a should lead')
  const settle = a.lead(URL_A, '?', lead.gate.token)
  const waiting = b.gate(URL_A, '?')
  settle(Promise.resolve('stored'))
  t.same((await waiting).gate, { kind: 'filled', stored: true })
  await c.tasks.settled()
  t.equal(await c.locks.held(URL_A, 'fill', '?'), false, 'released')
})

t.test('an uncacheable fill tells the waiters so (they fetch alone); a failed one says nothing either way', async (t) => {
  for (const [result, stored] of [['uncacheable', false], ['failed', undefined]] as const) {
    const c = cluster()
    const a = await c.instance()
    const b = await c.instance()
    const lead = await a.gate(URL_A, '?')
    if (lead.gate.kind !== 'lead' || lead.gate.token === undefined) throw new Error('a should lead')
    const settle = a.lead(URL_A, '?', lead.gate.token)
    const waiting = b.gate(URL_A, '?')
    settle(Promise.resolve(result))
    const got = (await waiting).gate
    // A failed fill releases the lock; the waiter may learn it from the message or from the lock.
    if (result === 'failed') t.ok(got.kind === 'filled' && got.stored !== false, `${result}: look again`)
    else t.same(got, { kind: 'filled', stored }, result)
  }
})

t.test('a waiter whose fill message is lost learns of the fill when the lock disappears', async (t) => {
  const c = cluster()
  const b = await c.instance()
  // A leader elsewhere that never publishes: its lock simply expires.
  await c.locks.acquire(URL_A, 'fill', '?', 1000, 'elsewhere')
  const waiting = b.gate(URL_A, '?')
  c.clock.advance(1001)
  t.same((await waiting).gate, { kind: 'filled', stored: true }, 'look in the store')
})

t.test('a waiter gives up after `wait` and fetches itself', async (t) => {
  const c = cluster(30)
  const b = await c.instance()
  await c.locks.acquire(URL_A, 'fill', '?', 60_000, 'stuck')
  t.same((await b.gate(URL_A, '?')).gate, { kind: 'filled', stored: undefined })
})

t.test('a lock this instance still holds (release failed) is not waited for', async (t) => {
  const c = cluster()
  let failRelease = true
  const locks: Locks = {
    acquire: async (...args: Parameters<Locks['acquire']>) => await c.locks.acquire(...args),
    release: async (url: CacheKey, purpose: LockPurpose, variant: string, token: string) => {
      if (failRelease) throw new Error('connection lost')
      return await c.locks.release(url, purpose, variant, token)
    },
    held: async (...args: Parameters<Locks['held']>) => await c.locks.held(...args)
  }
  const a = await c.instance({ locks })
  const lead = await a.gate(URL_A, '?')
  if (lead.gate.kind !== 'lead' || lead.gate.token === undefined) throw new Error('a should lead')
  a.lead(URL_A, '?', lead.gate.token)(Promise.resolve('stored'))
  await c.tasks.settled()
  t.same(c.errors, ['unlock'])
  t.same((await a.gate(URL_A, '?')).gate, { kind: 'filled', stored: undefined }, 'own lock: look in the store at once')
  failRelease = false
})

t.test('when the lock cannot be asked, the instance leads with its own token and still releases and announces', async (t) => {
  const c = cluster()
  const seen: string[] = []
  await c.bus.subscribe('cg:fill', (m) => seen.push(m))
  const locks: Locks = {
    acquire: async () => { throw new Error('Command timed out') },
    release: async (...args: Parameters<Locks['release']>) => await c.locks.release(...args),
    held: async (...args: Parameters<Locks['held']>) => await c.locks.held(...args)
  }
  const a = await c.instance({ locks })
  const lead = await a.gate(URL_A, '?')
  t.equal(lead.gate.kind, 'lead')
  t.ok(lead.gate.kind === 'lead' && lead.gate.token !== undefined, 'with a token to release')
  t.same(c.errors, ['lock'])
  if (lead.gate.kind === 'lead' && lead.gate.token !== undefined) a.lead(URL_A, '?', lead.gate.token)(Promise.resolve('stored'))
  await c.tasks.settled()
  t.same(seen.map((m) => JSON.parse(m) as unknown), [{ k: `${URL_A}\n?`, s: 'stored' }])
})

t.test('coordination off (wait 0): every gate leads without a lock', async (t) => {
  const c = cluster(0)
  const a = await c.instance()
  t.same((await a.gate(URL_A, '?')).gate, { kind: 'lead', token: undefined })
  t.equal(await c.locks.held(URL_A, 'fill', '?'), false)
})

t.test('hostile fill messages (not JSON, null, wrong types, unknown keys) are ignored without a crash', async (t) => {
  const c = cluster(50)
  const b = await c.instance()
  await c.locks.acquire(URL_A, 'fill', '?', 60_000, 'elsewhere')
  const waiting = b.gate(URL_A, '?')
  for (const m of ['not json', 'null', '42', '"text"', '[]', '{"k":7}', '{"k":null,"s":"stored"}', `{"k":"${URL_A}\\nother","s":"stored"}`]) await c.bus.publish('cg:fill', m)
  t.same((await waiting).gate, { kind: 'filled', stored: undefined }, 'still waiting until `wait`: no message was taken for the fill')
})
