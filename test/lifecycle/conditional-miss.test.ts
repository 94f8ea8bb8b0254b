// A conditional miss on its own (RFC 9111 §4.3.2): a real origin that validates, a manual
// clock, and a miss that records what it was handed instead of fetching.
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { text } from 'node:stream/consumers'
import { NO_VARIANT } from '../../src/cache/key.ts'
import { GatewayError } from '../../src/errors.ts'
import { ConditionalMisses, isConditional } from '../../src/lifecycle/conditional-miss.ts'
import type { Answer, Found, MissContext } from '../../src/lifecycle/types.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { parts, type Parts } from './parts.ts'

const NOTHING: Found = { entry: null, vary: null, variant: undefined, values: undefined, storeDetail: undefined }

interface Setup extends Parts {
  origin: Origin
  misses: ConditionalMisses
  handed: MissContext[]
}

async function setup (t: Test, handler: (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>): Promise<Setup> {
  const origin = await startOrigin(t, handler)
  const p = parts(t, origin.url)
  const handed: MissContext[] = []
  const misses = new ConditionalMisses({
    fetcher: p.fetcher,
    clock: p.clock,
    miss: async (ctx): Promise<Answer> => {
      handed.push(ctx)
      ctx.already?.res.body.resume()
      return { kind: 'error', error: new GatewayError('CG_ERR_ORIGIN_UNREACHABLE'), cacheStatus: ctx.status, outcome: 'miss' }
    },
    onEvent: (e) => p.events.push(e)
  })
  return { ...p, origin, misses, handed }
}

/** An origin that honours If-None-Match "v1", held until released. */
function validating (gate: Promise<void> = Promise.resolve()) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    await gate
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' })
      res.end()
      return
    }
    res.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=60', 'content-length': 4 })
    res.end('full')
  }
}

t.test('a miss is conditional when the client sent a validator, never for If-Range or Range alone', async (t) => {
  const s = await setup(t, validating())
  t.equal(isConditional(s.request('/a', { 'if-none-match': '"v1"' })), true)
  t.equal(isConditional(s.request('/a', { 'if-modified-since': 'Mon, 01 Jan 2024 00:00:00 GMT' })), true)
  t.equal(isConditional(s.request('/a', { 'if-range': '"v1"', range: 'bytes=0-1' })), false)
})

t.test('the client\'s 304 is relayed to that client, with its validators (and only those) forwarded, and never handed to the miss', async (t) => {
  const s = await setup(t, validating())
  const req = s.request('/a', { 'if-none-match': '"v1"', 'if-range': '"v1"', range: 'bytes=0-1' })
  const answer = await s.misses.handle(req, new Map(), NOTHING, { fwd: 'uri-miss' })
  t.same(answer.kind === 'stream' && [answer.status, answer.cacheStatus], [304, { fwd: 'uri-miss', fwdStatus: 304 }])
  t.equal(s.origin.requests[0]?.headers['if-none-match'], '"v1"')
  t.equal(s.origin.requests[0]?.headers.range, undefined, 'Range is not forwarded')
  t.equal(s.origin.requests[0]?.headers['if-range'], undefined)
  t.equal(s.handed.length, 0)
})

t.test('a full answer is handed to the miss as a response in hand, to be stored and shared like any', async (t) => {
  const s = await setup(t, validating())
  const req = s.request('/b', { 'if-none-match': '"old"' })
  await s.misses.handle(req, new Map(), NOTHING, { fwd: 'uri-miss' })
  t.equal(s.handed.length, 1)
  t.equal(s.handed[0]?.already?.res.status, 200)
  t.equal(s.origin.count(), 1)
})

t.test('identical conditional misses at the same time share one origin request; different validators do not', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const s = await setup(t, validating(gate))
  const same = Array.from({ length: 4 }, async () => await s.misses.handle(s.request('/c', { 'if-none-match': '"v1"' }), new Map(), NOTHING, { fwd: 'uri-miss' }))
  const other = s.misses.handle(s.request('/c', { 'if-none-match': '"v0"' }), new Map(), NOTHING, { fwd: 'uri-miss' })
  while (s.origin.count() < 2) await new Promise((resolve) => setImmediate(resolve))
  release()
  const answers = await Promise.all(same)
  await other
  t.equal(s.origin.count(), 2)
  t.same(answers.map((a) => a.kind === 'stream' ? a.status : a.kind), [304, 304, 304, 304])
  t.equal(answers.filter((a) => a.cacheStatus.collapsed === true).length, 3)
  for (const a of answers) if (a.kind === 'stream') t.equal(await text(a.body), '', 'a 304 has no body')
})

t.test('a conditional miss with credentials never shares another client\'s answer', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const s = await setup(t, validating(gate))
  const a = s.misses.handle(s.request('/d', { 'if-none-match': '"v1"' }), new Map(), NOTHING, { fwd: 'uri-miss' })
  const b = s.misses.handle(s.request('/d', { 'if-none-match': '"v1"', authorization: 'Bearer x' }), new Map(), { ...NOTHING, variant: NO_VARIANT }, { fwd: 'uri-miss' })
  while (s.origin.count() < 2) await new Promise((resolve) => setImmediate(resolve))
  release()
  await Promise.all([a, b])
  t.equal(s.origin.count(), 2)
})

t.test('an unreachable origin is a 502 for the leader and for those who shared its request', async (t) => {
  const s = await setup(t, validating())
  await s.origin.close()
  const answers = await Promise.all([1, 2].map(async () => await s.misses.handle(s.request('/e', { 'if-none-match': '"v1"' }), new Map(), NOTHING, { fwd: 'uri-miss' })))
  for (const a of answers) {
    t.equal(a.kind === 'error' && a.error.code, 'CG_ERR_ORIGIN_UNREACHABLE')
    t.equal(a.cacheStatus.detail, 'origin-unreachable')
  }
  t.same(s.events.filter((e) => e.type === 'origin').map((e) => e.type === 'origin' && e.status), ['error'])
})
