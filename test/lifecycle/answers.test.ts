// The answers the read-through's parts share, as pure functions of their inputs and `now`.
import t from 'tap'
import type { CacheEntry } from '../../src/cache/entry.ts'
import { forFetch, gatewayError, onlyIfCached, passedOutcome, staleAnswer, staleOrError } from '../../src/lifecycle/answers.ts'
import { GatewayError } from '../../src/errors.ts'
import { key } from './parts.ts'

const T0 = 1_700_000_000_000

function entry (over: Partial<CacheEntry> = {}): CacheEntry {
  return {
    url: key('http://shop.example/a'),
    status: 200,
    headers: { 'cache-control': 'max-age=60, stale-if-error=300' },
    body: Buffer.from('stored'),
    requestTime: T0,
    responseTime: T0,
    initialAge: 0,
    freshness: 60_000,
    staleWhileRevalidate: 0,
    staleIfError: 300_000,
    vary: {},
    tags: [],
    mustRevalidate: false,
    noCache: false,
    invalidatedAt: 0,
    ...over
  }
}

t.test('an origin failure within stale-if-error serves the stored entry with its age and the error status', async (t) => {
  const answer = staleOrError(entry(), new Map(), new GatewayError('CG_ERR_ORIGIN_UNREACHABLE'), 'stale', T0 + 120_000)
  t.equal(answer.kind, 'entry')
  if (answer.kind !== 'entry') return
  t.equal(answer.age, 120_000, 'age in ms')
  t.same(answer.cacheStatus, { hit: true, fwd: 'stale', ttl: -60, detail: 'stale-if-error' })
  t.equal(answer.outcome, 'stale')
  const withStatus = staleAnswer(entry(), 'stale', T0 + 120_000, 503)
  t.equal(withStatus.cacheStatus.fwdStatus, 503)
})

t.test('an origin failure past stale-if-error is the error, its detail named after the catalogue code', async (t) => {
  const late = T0 + 60_000 + 300_001
  const cases: Array<[GatewayError['code'], string]> = [
    ['CG_ERR_ORIGIN_UNREACHABLE', 'origin-unreachable'],
    ['CG_ERR_ORIGIN_TIMEOUT', 'origin-timeout'],
    ['CG_ERR_ORIGIN_BAD_RESPONSE', 'origin-bad-response']
  ]
  for (const [code, detail] of cases) {
    const answer = staleOrError(entry(), new Map(), new GatewayError(code), 'stale', late)
    t.equal(answer.kind, 'error', code)
    t.same(answer.cacheStatus, { fwd: 'stale', detail }, code)
  }
  const none = staleOrError(undefined, new Map(), new GatewayError('CG_ERR_ORIGIN_TIMEOUT'), undefined, T0)
  t.same(none.cacheStatus, { detail: 'origin-timeout' }, 'no entry and no fwd: the error alone')
})

t.test('a client\'s no-cache, or a must-revalidate entry, gets the error instead of the stale entry', async (t) => {
  const error = new GatewayError('CG_ERR_ORIGIN_UNREACHABLE')
  t.equal(staleOrError(entry(), new Map([['no-cache', '']]), error, 'stale', T0 + 120_000).kind, 'error')
  t.equal(staleOrError(entry({ mustRevalidate: true }), new Map(), error, 'stale', T0 + 120_000).kind, 'error')
})

t.test('a fetch for the cache drops every client conditional and Range, and replaces a claimed Surrogate-Capability', async (t) => {
  const forward = {
    'if-none-match': '"x"',
    'if-modified-since': 'Mon, 01 Jan 2024 00:00:00 GMT',
    'if-match': '"y"',
    'if-unmodified-since': 'Mon, 01 Jan 2024 00:00:00 GMT',
    'if-range': '"z"',
    range: 'bytes=0-1',
    'surrogate-capability': 'evil="Surrogate/1.0 ESI/1.0"',
    accept: 'text/html'
  }
  const out = forFetch(forward)
  t.same(Object.keys(out).sort(), ['accept', 'surrogate-capability'])
  t.not(out['surrogate-capability'], forward['surrogate-capability'])
  t.equal(forward.range, 'bytes=0-1', 'the caller\'s headers are not modified')
  const kept = forFetch(forward, ['if-none-match'])
  t.equal(kept['if-none-match'], '"x"')
  t.equal(kept['if-match'], undefined)
})

t.test('only-if-cached without a usable entry is a 504 with the reason in Cache-Status', async (t) => {
  const answer = onlyIfCached('miss')
  t.equal(answer.kind, 'error')
  if (answer.kind !== 'error') return
  t.equal(answer.error.code, 'CG_ERR_ONLY_IF_CACHED')
  t.equal(answer.error.statusCode, 504)
  t.same(answer.cacheStatus, { fwd: 'miss', detail: 'only-if-cached' })
})

t.test('a raw socket error becomes origin-unreachable; a catalogue error is kept', async (t) => {
  t.equal(gatewayError(Object.assign(new Error('reset'), { code: 'ECONNRESET' })).code, 'CG_ERR_ORIGIN_UNREACHABLE')
  const timeout = new GatewayError('CG_ERR_ORIGIN_TIMEOUT')
  t.equal(gatewayError(timeout), timeout)
})

t.test('the outcome of a streamed origin response: miss or pass, revalidated, or error for a 5xx while revalidating', async (t) => {
  const rows: Array<[boolean, number, string | undefined, string]> = [
    [false, 200, undefined, 'miss'],
    [false, 200, 'private', 'pass'],
    [false, 503, 'status', 'pass'],
    [true, 200, undefined, 'revalidated'],
    [true, 200, 'no-store', 'pass'],
    [true, 503, 'status', 'error'],
    [true, 500, undefined, 'error']
  ]
  for (const [revalidating, status, refused, outcome] of rows) {
    t.equal(passedOutcome(revalidating, status, refused), outcome, `${revalidating ? 'revalidating' : 'miss'}, ${status}, ${refused ?? 'stored'}: ${outcome}`)
  }
})
