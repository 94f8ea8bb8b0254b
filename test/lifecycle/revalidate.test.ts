// Foreground revalidation on its own: a real origin, a memory store, a manual clock, and a
// miss that records what it was handed instead of fetching (the read-through's miss is
// exercised by test/integration/conditionals.test.ts and stale.test.ts).
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { NO_VARIANT } from '../../src/cache/key.ts'
import { prepareEntry } from '../../src/cache/prepare.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import { GatewayError } from '../../src/errors.ts'
import { DecisionLog } from '../../src/lifecycle/explain.ts'
import { Revalidator } from '../../src/lifecycle/revalidate.ts'
import { StoreWriter } from '../../src/lifecycle/store-writer.ts'
import { Tasks } from '../../src/lifecycle/tasks.ts'
import type { Answer, CacheRequest, Found, MissContext } from '../../src/lifecycle/types.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { parts, type Parts } from './parts.ts'

interface Setup extends Parts {
  origin: Origin
  revalidator: Revalidator
  misses: MissContext[]
  /** Stores a response for `req` as if fetched at the clock's time, and what a lookup finds for it. */
  stored: (req: CacheRequest, headers: Record<string, string>) => Promise<{ entry: CacheEntry, found: Found }>
}

async function setup (t: Test, handler: (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>): Promise<Setup> {
  const origin = await startOrigin(t, handler)
  const p = parts(t, origin.url)
  const decisions = new DecisionLog(100)
  const writer = new StoreWriter({ store: p.store, cache: p.config.cache, tasks: new Tasks(), decisions, onStoreError: () => {}, random: () => 0, bounds: { maxEntries: 10, maxBytes: 10_000 } })
  const misses: MissContext[] = []
  const revalidator = new Revalidator({
    fetcher: p.fetcher,
    writer,
    decisions,
    clock: p.clock,
    miss: async (ctx): Promise<Answer> => {
      misses.push(ctx)
      ctx.already?.res.body.resume()
      return { kind: 'error', error: new GatewayError('CG_ERR_ORIGIN_UNREACHABLE'), cacheStatus: ctx.status, outcome: 'miss' }
    },
    onEvent: (e) => p.events.push(e)
  })
  return {
    ...p,
    origin,
    revalidator,
    misses,
    stored: async (req, headers) => {
      const now = p.clock.now()
      const prepared = prepareEntry({ url: req.key, method: 'GET', requestHeaders: {}, request: new Map(), status: 200, headers, requestTime: now, responseTime: now }, req.route)
      if (!prepared.storable) throw new Error(prepared.detail)
      const entry: CacheEntry = { ...prepared.meta, body: Buffer.from('stored body'), vary: {} }
      await writer.put(req.key, NO_VARIANT, entry, 0)
      return { entry, found: { entry, vary: [], variant: NO_VARIANT, values: {}, storeDetail: undefined } }
    }
  }
}

const notModified = (res: ServerResponse, headers: Record<string, string> = {}): void => {
  res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=120', ...headers })
  res.end()
}

t.test('a matching 304 freshens the stored entry with its fields, keeps the body, and stores it', async (t) => {
  const s = await setup(t, (req, res) => {
    t.equal(req.headers['if-none-match'], '"v1"', 'the conditional carries the stored validator')
    notModified(res, { 'x-new': 'yes' })
  })
  const req = s.request('/a')
  const { entry, found } = await s.stored(req, { etag: '"v1"', 'cache-control': 'max-age=60' })
  s.clock.advance(90_000)
  const answer = await s.revalidator.revalidate(req, new Map(), found, entry, 'stale')
  t.equal(answer.kind, 'entry')
  if (answer.kind !== 'entry') return
  t.same(answer.cacheStatus, { fwd: 'stale', fwdStatus: 304, stored: true })
  t.equal(answer.entry.body.toString(), 'stored body')
  t.equal(answer.entry.headers['x-new'], 'yes')
  t.equal(answer.entry.freshness, 120_000)
  const again = await s.store.getVariant(req.key, NO_VARIANT)
  t.equal(again?.headers['x-new'], 'yes', 'the merged entry is in the store')
  t.equal(s.misses.length, 0)
})

t.test('a 304 whose Last-Modified names another representation updates nothing and is served as stored', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(304, { 'last-modified': 'Tue, 02 Jan 2024 00:00:00 GMT', 'cache-control': 'max-age=120', 'x-new': 'yes' })
    res.end()
  })
  const req = s.request('/b')
  const { entry, found } = await s.stored(req, { 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT', 'cache-control': 'max-age=60' })
  const answer = await s.revalidator.revalidate(req, new Map(), found, entry, 'stale')
  t.equal(answer.kind === 'entry' && answer.entry, entry)
  t.equal(answer.cacheStatus.stored, undefined, 'not claimed stored')
  t.equal((await s.store.getVariant(req.key, NO_VARIANT))?.headers['x-new'], undefined)
})

t.test('a 304 that now forbids storage removes the stored entry and is not claimed stored', async (t) => {
  const s = await setup(t, (_req, res) => { notModified(res, { 'cache-control': 'no-store' }) })
  const req = s.request('/c')
  const { entry, found } = await s.stored(req, { etag: '"v1"', 'cache-control': 'max-age=60' })
  const answer = await s.revalidator.revalidate(req, new Map(), found, entry, 'stale')
  t.equal(answer.kind, 'entry')
  t.equal(answer.cacheStatus.stored, undefined)
  t.equal(await s.store.getVariant(req.key, NO_VARIANT), null)
})

t.test('concurrent revalidations without credentials share one conditional request', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const s = await setup(t, async (_req, res) => { await gate; notModified(res) })
  const req = s.request('/d')
  const { entry, found } = await s.stored(req, { etag: '"v1"', 'cache-control': 'max-age=60' })
  const answers = Array.from({ length: 5 }, async () => await s.revalidator.revalidate(req, new Map(), found, entry, 'stale'))
  while (s.origin.count() === 0) await new Promise((resolve) => setImmediate(resolve))
  release()
  const done = await Promise.all(answers)
  t.equal(s.origin.count(), 1)
  t.equal(done.filter((a) => a.cacheStatus.collapsed === true).length, 4)
  t.equal(s.events.filter((e) => e.type === 'collapsed').length, 4)
})

t.test('a request with credentials revalidates alone: it never shares another client\'s conditional request', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const s = await setup(t, async (_req, res) => { await gate; notModified(res) })
  const plain = s.request('/e')
  const withAuth = s.request('/e', { authorization: 'Bearer x' })
  const { entry, found } = await s.stored(plain, { etag: '"v1"', 'cache-control': 'max-age=60, public' })
  const a = s.revalidator.revalidate(plain, new Map(), found, entry, 'stale')
  const b = s.revalidator.revalidate(withAuth, new Map(), found, entry, 'stale')
  while (s.origin.count() < 2) await new Promise((resolve) => setImmediate(resolve))
  release()
  await Promise.all([a, b])
  t.equal(s.origin.count(), 2)
  t.equal(s.origin.requests[1]?.headers.authorization ?? s.origin.requests[0]?.headers.authorization, 'Bearer x')
})

t.test('a full response or an entry without validators goes to the miss, with the stale entry it replaces', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { etag: '"v2"', 'cache-control': 'max-age=60', 'content-length': 3 })
    res.end('new')
  })
  const req = s.request('/f')
  const { entry, found } = await s.stored(req, { etag: '"v1"', 'cache-control': 'max-age=60' })
  await s.revalidator.revalidate(req, new Map(), found, entry, 'request-no-cache')
  t.equal(s.misses.length, 1)
  t.equal(s.misses[0]?.stale, entry)
  t.equal(s.misses[0]?.already?.res.status, 200)
  t.same(s.misses[0]?.status, { fwd: 'request', detail: 'request-no-cache' })
  const bare = await s.stored(s.request('/g'), { 'cache-control': 'max-age=60' })
  await s.revalidator.revalidate(s.request('/g'), new Map(), bare.found, bare.entry, 'stale')
  t.equal(s.misses.length, 2)
  t.equal(s.misses[1]?.already, undefined, 'no validators: a plain miss, no conditional request sent')
  t.equal(s.origin.count('/g'), 0)
})

t.test('an origin error within stale-if-error serves the stored entry; an unreachable origin past it is a 502', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(503, { 'content-length': 0 })
    res.end()
  })
  const req = s.request('/h')
  const { entry, found } = await s.stored(req, { etag: '"v1"', 'cache-control': 'max-age=60, stale-if-error=600' })
  s.clock.advance(120_000)
  const answer = await s.revalidator.revalidate(req, new Map(), found, entry, 'stale')
  t.same(answer.kind === 'entry' && answer.cacheStatus, { hit: true, fwd: 'stale', fwdStatus: 503, ttl: -60, detail: 'stale-if-error' })
  await s.origin.close()
  s.clock.advance(600_000)
  const gone = await s.revalidator.revalidate(req, new Map(), found, entry, 'stale')
  t.equal(gone.kind === 'error' && gone.error.code, 'CG_ERR_ORIGIN_UNREACHABLE')
  t.same(gone.cacheStatus, { fwd: 'stale', detail: 'origin-unreachable' })
})
