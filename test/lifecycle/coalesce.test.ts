// A flight on its own: a real origin, the real origin client, a manual clock. How its waiters
// are answered: one entry once the body is complete, a stream when the body is too large to
// keep or still arriving when they must start, the error when the body fails while they wait.
import t from 'tap'
import type { Test } from 'tap'
import type { Readable } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { CacheEntry } from '../../src/cache/entry.ts'
import { Flight, type Shared } from '../../src/lifecycle/coalesce.ts'
import type { CacheRequest } from '../../src/lifecycle/types.ts'
import { startOrigin } from '../helpers/origin.ts'
import { parts, type Parts } from './parts.ts'

const BODY = Buffer.from('0123456789'.repeat(400))
const HALF = BODY.length / 2

/** An origin that sends the head and the first half of BODY, then waits for the test to finish (or fail) the body. */
async function halfway (t: Test, headers: Record<string, string | number> = { 'content-length': BODY.length }): Promise<{ p: Parts, finish: (how: (res: ServerResponse) => void) => void }> {
  let finish!: (how: (res: ServerResponse) => void) => void
  const finished = new Promise<(res: ServerResponse) => void>((resolve) => { finish = resolve })
  const origin = await startOrigin(t, async (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', ...headers })
    res.write(BODY.subarray(0, HALF))
    const how = await finished
    how(res)
  })
  return { p: parts(t, origin.url), finish }
}

/** What the leader stores, as read-through.ts gives it to the flight. */
function meta (req: CacheRequest): Omit<CacheEntry, 'body'> {
  return { url: req.key, status: 200, headers: { 'cache-control': 'max-age=60' }, requestTime: 0, responseTime: 0, initialAge: 0, freshness: 60_000, staleWhileRevalidate: 0, staleIfError: 0, vary: {}, tags: [], mustRevalidate: false, noCache: false, invalidatedAt: 0 }
}

/** Starts a flight as the leader does: subscribes its own stream, then shares the response once the head is in. */
async function lead (p: Parts, req: CacheRequest, options: { maxBytes?: number, holdMs?: number } = {}): Promise<{ flight: Flight, leader: Readable }> {
  const flight = new Flight(async () => await p.fetcher.get(req, req.forward), options.maxBytes ?? 1024 * 1024, options.holdMs !== undefined ? { holdMs: options.holdMs } : {})
  const leader = flight.subscribe()
  if (leader === null) throw new Error('no leader stream')
  leader.on('error', () => {})
  await flight.head
  flight.varyValues = {}
  flight.answerAs(meta(req))
  return { flight, leader }
}

async function read (body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** Resolves once the leader's stream has received `bytes` bytes (the flight has pumped them). */
async function received (leader: Readable, bytes: number): Promise<Buffer[]> {
  const seen: Buffer[] = []
  let n = 0
  return await new Promise((resolve) => {
    const on = (c: Buffer): void => {
      seen.push(c)
      n += c.length
      if (n >= bytes) {
        leader.off('data', on)
        leader.pause()
        resolve(seen)
      }
    }
    leader.on('data', on)
  })
}

t.test('waiters that join before the body ends get one entry, the same object, once it is complete', async (t) => {
  const { p, finish } = await halfway(t)
  const req = p.request('/whole')
  const { flight, leader } = await lead(p, req, { holdMs: 60_000 })
  const seen = await received(leader, HALF)
  const settled: string[] = []
  const a = flight.share(req.forward).then((s) => { settled.push('a'); return s })
  const b = flight.share(req.forward).then((s) => { settled.push('b'); return s })
  // Every microtask and pending I/O callback runs: the waiters are still waiting.
  await new Promise((resolve) => setImmediate(resolve))
  t.same(settled, [], 'nothing is answered while the body is still arriving')
  finish((res) => res.end(BODY.subarray(HALF)))
  const [sa, sb] = await Promise.all([a, b])
  if (sa?.kind !== 'entry' || sb?.kind !== 'entry') throw new Error(`expected entries, got ${sa?.kind} and ${sb?.kind}`)
  t.equal(sa.entry, sb.entry, 'one entry object for every waiter (its downstream fields are computed once)')
  t.ok(sa.entry.body.equals(BODY), 'the whole body, byte for byte')
  t.equal(sa.entry.url, req.key)
  t.equal(sa.head.status, 200)
  const late = await flight.share(req.forward)
  t.equal(late?.kind === 'entry' ? late.entry : undefined, sa.entry, 'a waiter joining after the end gets the same entry')
  leader.resume()
  t.ok(Buffer.concat([...seen, await read(leader)]).equals(BODY), 'the leader still streams the whole body')
})

t.test('a body still arriving when waiters must start (holdMs) streams to them: what came so far, then the rest live', async (t) => {
  const { p, finish } = await halfway(t)
  const req = p.request('/slow')
  const { flight, leader } = await lead(p, req, { holdMs: 1 })
  await received(leader, HALF)
  const shared = await flight.share(req.forward)
  if (shared?.kind !== 'stream') throw new Error(`expected a stream, got ${shared?.kind}`)
  t.same(shared.stored?.headers, meta(req).headers, 'with the stored fields, for the answer')
  const body = read(shared.body)
  finish((res) => res.end(BODY.subarray(HALF)))
  t.ok((await body).equals(BODY), 'the whole body, byte for byte')
  leader.resume()
})

t.test('a body that outgrows maxBytes streams to the waiters waiting for it, every byte of it', async (t) => {
  // No Content-Length: the size shows only as the body arrives.
  const { p, finish } = await halfway(t, { 'transfer-encoding': 'chunked' })
  const req = p.request('/large')
  const { flight, leader } = await lead(p, req, { maxBytes: HALF + 10, holdMs: 60_000 })
  await received(leader, HALF)
  const waiting = flight.share(req.forward)
  finish((res) => res.end(BODY.subarray(HALF)))
  const shared = await waiting
  if (shared?.kind !== 'stream') throw new Error(`expected a stream, got ${shared?.kind}`)
  leader.resume()
  t.ok((await read(shared.body)).equals(BODY), 'the whole body, byte for byte')
  const end = await flight.end
  t.same(end, { complete: true, body: undefined, bytes: BODY.length }, 'not kept')
  t.equal(await flight.share(req.forward), undefined, 'a waiter arriving after that cannot be given the body')
})

t.test('a body that fails while waiters wait gives each of them the error, never part of the body', async (t) => {
  const { p, finish } = await halfway(t)
  const req = p.request('/cut')
  const { flight, leader } = await lead(p, req, { holdMs: 60_000 })
  await received(leader, HALF)
  const waiters = [flight.share(req.forward), flight.share(req.forward)]
  finish((res) => res.destroy())
  const answers: Array<Shared | undefined> = await Promise.all(waiters)
  for (const a of answers) {
    if (a?.kind !== 'failed') throw new Error(`expected the failure, got ${a?.kind}`)
    t.match(a.error.code, /^CG_ERR_ORIGIN_(UNREACHABLE|BAD_RESPONSE)$/, a.error.code)
    t.equal(a.head.status, 200, 'after the head had arrived')
  }
  t.equal((await flight.end).complete, false)
  t.equal(await flight.share(req.forward), undefined, 'a later request is not answered from the failed flight')
  leader.resume()
})

t.test('a waiter selecting another variant is not given the response, whatever the body does', async (t) => {
  const { p, finish } = await halfway(t)
  const req = p.request('/greeting', { 'accept-language': 'en' })
  const { flight, leader } = await lead(p, req, { holdMs: 60_000 })
  flight.varyValues = { 'accept-language': 'en' }
  t.equal(await flight.share({ 'accept-language': 'de' }), undefined)
  finish((res) => res.end(BODY.subarray(HALF)))
  leader.resume()
  t.equal((await flight.share({ 'accept-language': 'en' }))?.kind, 'entry')
})
