// The store-write path on its own: a real origin, a memory store, a manual clock. What the
// writer stores, what it refuses (and remembers as hit-for-miss), and what it records for /explain.
import t from 'tap'
import type { Test } from 'tap'
import { Flight } from '../../src/lifecycle/coalesce.ts'
import { DecisionLog } from '../../src/lifecycle/explain.ts'
import { StoreWriter } from '../../src/lifecycle/store-writer.ts'
import { Tasks } from '../../src/lifecycle/tasks.ts'
import type { CacheRequest } from '../../src/lifecycle/types.ts'
import { NO_VARIANT } from '../../src/cache/key.ts'
import { LANGUAGE_ALIAS, variantId } from '../../src/cache/vary.ts'
import { startOrigin } from '../helpers/origin.ts'
import { parts, type Parts } from './parts.ts'

interface Setup extends Parts {
  writer: StoreWriter
  decisions: DecisionLog
  tasks: Tasks
  errors: string[]
  /** Leads a flight for `req` and admits its response. */
  lead: (req: CacheRequest, options?: { bypassed?: boolean }) => Promise<ReturnType<StoreWriter['admit']>>
}

async function setup (t: Test, handler: Parameters<typeof startOrigin>[1], route: Record<string, unknown> = {}, random = (): number => 0.5): Promise<Setup> {
  const origin = await startOrigin(t, handler)
  const p = parts(t, origin.url, route)
  const decisions = new DecisionLog(100)
  const tasks = new Tasks()
  const errors: string[] = []
  const writer = new StoreWriter({
    store: p.store,
    cache: p.config.cache,
    tasks,
    decisions,
    onStoreError: (op) => errors.push(op),
    random,
    bounds: { maxEntries: 100, maxBytes: 1024 * 1024 }
  })
  return {
    ...p,
    writer,
    decisions,
    tasks,
    errors,
    lead: async (req, options = {}) => {
      const flight = new Flight(async () => await p.fetcher.get(req, req.forward), p.config.cache.maxObjectSize)
      // The leader's own stream, drained (a cut-short body destroys it with the error).
      flight.subscribe()?.on('error', () => {}).resume()
      const head = await flight.head
      return writer.admit({ req, directives: new Map(), head, flight, bypassed: options.bypassed ?? false, now: p.clock.now() })
    }
  }
}

t.test('a storable response is stored once its body is complete, under its variant, with the decision recorded', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 5 })
    res.end('hello')
  })
  const req = s.request('/a')
  const admission = await s.lead(req)
  t.equal(admission.kind, 'storing')
  if (admission.kind !== 'storing') return
  t.equal(await admission.write, true)
  await s.tasks.settled()
  const stored = await s.store.getVariant(req.key, NO_VARIANT)
  t.equal(stored?.body.toString(), 'hello')
  t.equal(stored?.freshness, 60_000)
  t.equal(s.decisions.last(req.key)?.stored, true)
  t.equal(s.decisions.last(req.key)?.freshnessSource, 'max-age')
})

t.test('TTL jitter only shortens the freshness lifetime', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=100', 'content-length': 1 })
    res.end('x')
  }, { ttlJitter: 10 }, () => 1)
  const req = s.request('/jitter')
  const admission = await s.lead(req)
  if (admission.kind !== 'storing') throw new Error(admission.kind)
  await admission.write
  t.equal((await s.store.getVariant(req.key, NO_VARIANT))?.freshness, 90_000)
})

t.test('a response that refuses storage is not stored and marks its URL uncacheable (hit-for-miss)', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'private', 'content-length': 1 })
    res.end('x')
  })
  const req = s.request('/private')
  const admission = await s.lead(req)
  t.same({ kind: admission.kind, detail: admission.kind === 'refused' ? admission.detail : undefined, aboutUrl: admission.kind === 'refused' && admission.aboutUrl },
    { kind: 'refused', detail: 'private', aboutUrl: true })
  t.equal(s.writer.uncacheable(req.key, s.clock.now()), true)
  t.equal(await s.store.getVariant(req.key, NO_VARIANT), null)
  t.equal(s.decisions.last(req.key)?.detail, 'private')
  s.clock.advance(s.config.cache.hitForMiss)
  t.equal(s.writer.uncacheable(req.key, s.clock.now()), false, 'hit-for-miss ends')
  t.equal(s.writer.stats().entries, 0, 'and is forgotten')
})

t.test('a refusal about this request only (credentials) neither stores nor marks the URL uncacheable', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 1 })
    res.end('x')
  })
  const req = s.request('/mine', { authorization: 'Bearer secret' })
  const admission = await s.lead(req)
  t.equal(admission.kind, 'refused')
  if (admission.kind !== 'refused') return
  t.equal(admission.aboutUrl, false)
  t.equal(s.writer.uncacheable(req.key, s.clock.now()), false, 'another client\'s next miss still coalesces')
})

t.test('an origin error is refused without marking the URL uncacheable', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(503, { 'cache-control': 'max-age=60', 'content-length': 1 })
    res.end('x')
  })
  const admission = await s.lead(s.request('/down'))
  t.equal(admission.kind === 'refused' && admission.aboutUrl, false)
})

t.test('a declared length above maxObjectSize is refused as too-large before the body arrives', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 2048 })
    res.end(Buffer.alloc(2048))
  }, {})
  const big = new StoreWriter({ store: s.store, cache: { ...s.config.cache, maxObjectSize: 1024 }, tasks: s.tasks, decisions: s.decisions, onStoreError: () => {}, random: () => 0, bounds: { maxEntries: 10, maxBytes: 10_000 } })
  const req = s.request('/big')
  const flight = new Flight(async () => await s.fetcher.get(req, req.forward), 1024)
  flight.subscribe()?.resume()
  const admission = big.admit({ req, directives: new Map(), head: await flight.head, flight, bypassed: false, now: 0 })
  t.same(admission.kind === 'refused' && [admission.detail, admission.aboutUrl], ['too-large', false])
})

t.test('a body cut short is never stored, and the decision says body-incomplete', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 100 })
    // The head and part of the body reach the gateway, then the connection is cut.
    res.write('only part', () => { res.socket?.destroy() })
  })
  const req = s.request('/cut')
  const admission = await s.lead(req)
  if (admission.kind !== 'storing') throw new Error(admission.kind)
  t.equal(await admission.write, false)
  t.equal(await s.store.getVariant(req.key, NO_VARIANT), null)
  t.equal(s.decisions.last(req.key)?.detail, 'body-incomplete')
})

t.test('while the store is bypassed a storable response is not written', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': 1 })
    res.end('x')
  })
  const req = s.request('/bypassed')
  const admission = await s.lead(req, { bypassed: true })
  t.equal(admission.kind, 'bypassed')
  await s.tasks.settled()
  t.equal(await s.store.getVariant(req.key, NO_VARIANT), null)
})

t.test('a Vary response is stored under the variant of the headers the origin received, not the client\'s', async (t) => {
  const s = await setup(t, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language', 'content-length': 2 })
    res.end(String(req.headers['accept-language'] ?? '--').slice(0, 2))
  })
  // The client's headers say "fr"; what is forwarded (and so what the origin answered) says "en".
  const req = { ...s.request('/vary', { 'accept-language': 'fr' }), forward: { 'accept-language': 'en' } }
  const admission = await s.lead(req)
  if (admission.kind !== 'storing') throw new Error(admission.kind)
  await admission.write
  t.same(admission.values, { 'accept-language': 'en' })
  t.equal((await s.store.getVariant(req.key, variantId({ 'accept-language': 'en' })))?.body.toString(), 'en')
  t.equal(await s.store.getVariant(req.key, variantId({ 'accept-language': 'fr' })), null)
})

t.test('judge decides from the head alone, before any byte of the body is read; write stores what it judged storable', async (t) => {
  const s = await setup(t, (_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-location': '/post', 'content-length': 4 })
    res.end('post')
  })
  const req = s.request('/post')
  const head = (headers: Record<string, string>): { status: number, headers: Record<string, string>, requestTime: number, responseTime: number } =>
    ({ status: 200, headers: { 'content-location': '/post', ...headers }, requestTime: s.clock.now(), responseTime: s.clock.now() })
  const refused = s.writer.judge({ req, directives: new Map(), head: head({ 'cache-control': 'private, max-age=60' }), bypassed: false, now: s.clock.now(), post: true })
  t.same(refused, { kind: 'refused', detail: 'private', aboutUrl: false, values: {} }, 'no flight needed to refuse a POST response')
  t.equal(s.decisions.last(req.key)?.detail, 'private', 'recorded for /explain')

  const verdict = s.writer.judge({ req, directives: new Map(), head: head({ 'cache-control': 'max-age=60' }), bypassed: false, now: s.clock.now(), post: true })
  if (verdict.kind !== 'storable') throw new Error(verdict.kind)
  await s.tasks.settled()
  t.equal(await s.store.getVariant(req.key, NO_VARIANT), null, 'judged, not written')
  const flight = new Flight(async () => await s.fetcher.get(req, req.forward), s.config.cache.maxObjectSize)
  flight.subscribe()?.resume()
  const admission = s.writer.write(verdict, flight)
  if (admission.kind !== 'storing') throw new Error(admission.kind)
  t.equal(await admission.write, true)
  t.equal((await s.store.getVariant(req.key, NO_VARIANT))?.body.toString(), 'post')
})

t.test('a response in one language is also written as its alias, a variant of its own; the answer to that language alone is not', async (t) => {
  const s = await setup(t, (req, res) => {
    const body = `de for ${String(req.headers['accept-language'])}`
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language', 'content-language': 'de', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  const de = { 'accept-language': 'de' }
  const alias = { ...de, [LANGUAGE_ALIAS]: 'de' }
  const exact = await s.lead(s.request('/lang', de))
  if (exact.kind !== 'storing') throw new Error(exact.kind)
  await exact.write
  const url = s.request('/lang').key
  t.equal(await s.store.getVariant(url, variantId(alias)), null, 'no alias for the answer to de itself')
  const other = await s.lead(s.request('/lang', { 'accept-language': 'xx, de;q=0.1' }))
  if (other.kind !== 'storing') throw new Error(other.kind)
  await other.write
  t.equal((await s.store.getVariant(url, variantId(de)))?.body.toString(), 'de for de', 'the answer to de is kept')
  const stored = await s.store.getVariant(url, variantId(alias))
  t.equal(stored?.body.toString(), 'de for xx, de;q=0.1', 'the alias')
  t.same(stored?.vary, alias)
  t.equal((await s.store.getVariant(url, variantId({ 'accept-language': 'de;q=0.1,xx' })))?.body.toString(), 'de for xx, de;q=0.1', 'and its own variant')
})
