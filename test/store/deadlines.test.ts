// The deadline sweeper: a call with no reply fails after its deadline; a reply that arrived
// in time is never failed; the sweeper stops when nothing waits.
import t from 'tap'
import { Deadlines, ReadTimeoutError } from '../../src/store/deadlines.ts'

// The sweeper's interval is unref'd (a gateway's sockets keep the process alive); here a
// pending call with no socket behind it would let the process exit before its deadline.
const alive = setInterval(() => undefined, 60_000)
t.teardown(() => { clearInterval(alive) })

t.test('a call that never answers fails with ReadTimeoutError naming its deadline', async (t) => {
  const d = new Deadlines(2)
  const started = performance.now()
  const err = await d.run(new Promise(() => undefined), 15).catch((e: unknown) => e)
  t.ok(err instanceof ReadTimeoutError)
  t.match((err as Error).message, /no reply within 15 ms/)
  t.ok(performance.now() - started >= 15, 'not before its deadline')
})

t.test('an answer or a rejection in time is passed through unchanged', async (t) => {
  const d = new Deadlines(2)
  t.equal(await d.run(Promise.resolve('v'), 1000), 'v')
  const boom = new Error('boom')
  t.equal(await d.run(Promise.reject(boom), 1000).catch((e: unknown) => e), boom)
  t.match(await d.run(Promise.reject(new Error('s')), 1000).catch((e: unknown) => e), { message: 's' }, 'a non-Error rejection becomes an Error')
})

t.test('a reply already waiting when the deadline is swept is delivered, not failed (a busy event loop)', async (t) => {
  const d = new Deadlines(1)
  let resolve: (v: string) => void = () => undefined
  const call = d.run(new Promise<string>((_resolve) => { resolve = _resolve }), 5)
  // Block the event loop past the deadline; the reply "arrives" during the block, before the
  // sweep's setImmediate can fail the call.
  const until = performance.now() + 30
  setTimeout(() => { resolve('late but read') }, 0)
  while (performance.now() < until) { /* busy */ }
  t.equal(await call, 'late but read')
})

t.test('a late reply after the deadline fired changes nothing', async (t) => {
  const d = new Deadlines(1)
  let resolve: (v: string) => void = () => undefined
  const call = d.run(new Promise<string>((_resolve) => { resolve = _resolve }), 5)
  const err = await call.catch((e: unknown) => e)
  resolve('too late')
  t.ok(err instanceof ReadTimeoutError)
})

t.test('a counter hears how each call ended, once, before its caller does: the value, the error or the deadline', async (t) => {
  const d = new Deadlines(1)
  const ends: Array<[number, string]> = []
  const counter = { end: (admission: number, err: Error | undefined) => { ends.push([admission, err === undefined ? 'ok' : err.name]) } }
  const answered = d.run(Promise.resolve('v'), 1000, counter, 4).then((v) => { ends.push([4, `caller got ${v}`]) })
  const failed = d.run(Promise.reject(new TypeError('bad')), 1000, counter, 6).catch((e: unknown) => { ends.push([6, `caller got ${(e as Error).name}`]) })
  let late: (v: string) => void = () => undefined
  const timedOut = d.run(new Promise<string>((resolve) => { late = resolve }), 5, counter, 9).catch((e: unknown) => { ends.push([9, `caller got ${(e as Error).name}`]) })
  await Promise.all([answered, failed, timedOut])
  late('too late')
  await new Promise((resolve) => setImmediate(resolve))
  const of = (admission: number): string[] => ends.filter(([a]) => a === admission).map(([, what]) => what)
  t.same(of(4), ['ok', 'caller got v'], 'an answer: counted, then the caller')
  t.same(of(6), ['TypeError', 'caller got TypeError'], 'a failure: counted with its error, then the caller')
  t.same(of(9), ['ReadTimeoutError', 'caller got ReadTimeoutError'], 'a deadline: counted, then the caller; the late reply not counted again')
})
