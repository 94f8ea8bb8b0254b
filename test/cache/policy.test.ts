import t from 'tap'
import { parseCacheControl } from '../../src/cache/cache-control.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { CacheKey } from '../../src/cache/key.ts'
import {
  decide,
  ERROR_STATUSES,
  mayServeStaleOnError,
  refreshAheadDue,
  remainingFreshness,
  requestDirectives,
  type Decision
} from '../../src/cache/policy.ts'

const T = Date.UTC(2026, 0, 1)
const S = 1000

function entry (over: Partial<CacheEntry> = {}): CacheEntry {
  return {
    url: 'http://h/' as CacheKey,
    status: 200,
    headers: {},
    body: Buffer.alloc(0),
    requestTime: T,
    responseTime: T,
    initialAge: 0,
    freshness: 60 * S,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    vary: {},
    tags: [],
    mustRevalidate: false,
    noCache: false,
    invalidatedAt: 0,
    ...over
  }
}

interface Row {
  name: string
  entry?: Partial<CacheEntry>
  request?: string
  /** ms after the response time. */
  at: number
  expected: { kind: Decision['kind'], detail?: string, refresh?: boolean }
}

t.test('decide says how a stored response may answer (RFC 9111 §4, §5.2.1, RFC 5861)', async (t) => {
  const rows: Row[] = [
    { name: '§4.2 fresh: current age below the lifetime', at: 30 * S, expected: { kind: 'fresh' } },
    { name: '§4.2 fresh just before the lifetime ends', at: 60 * S - 1, expected: { kind: 'fresh' } },
    { name: '§4.2 stale once current age equals the lifetime', at: 60 * S, expected: { kind: 'revalidate', detail: 'stale' } },
    { name: '§4.2.3 the initial age counts toward staleness', entry: { initialAge: 50 * S }, at: 10 * S, expected: { kind: 'revalidate', detail: 'stale' } },
    { name: 'RFC 5861 §3 stale within stale-while-revalidate: serve stale and refresh', entry: { staleWhileRevalidate: 30 * S }, at: 80 * S, expected: { kind: 'stale', detail: 'stale-while-revalidate', refresh: true } },
    { name: 'RFC 5861 §3 the last millisecond of the window serves stale', entry: { staleWhileRevalidate: 30 * S }, at: 90 * S - 1, expected: { kind: 'stale', detail: 'stale-while-revalidate', refresh: true } },
    { name: 'RFC 5861 §3 at the end of stale-while-revalidate: revalidate (the window is half-open, like retention)', entry: { staleWhileRevalidate: 30 * S }, at: 90 * S, expected: { kind: 'revalidate', detail: 'stale' } },
    { name: 'RFC 5861 §3 a window of 0 never serves stale, not even at the instant of expiry', entry: { staleWhileRevalidate: 0 }, at: 60 * S, expected: { kind: 'revalidate', detail: 'stale' } },
    { name: '§5.2.1.4 request no-cache revalidates a fresh entry', request: 'no-cache', at: 0, expected: { kind: 'revalidate', detail: 'request-no-cache' } },
    { name: '§5.2.2.4 response no-cache revalidates a fresh entry', entry: { noCache: true }, at: 0, expected: { kind: 'revalidate', detail: 'response-no-cache' } },
    { name: '§4.2.4 response no-cache forbids stale-while-revalidate', entry: { noCache: true, staleWhileRevalidate: 30 * S }, at: 70 * S, expected: { kind: 'revalidate', detail: 'response-no-cache' } },
    { name: '§5.2.1.1 request max-age=0 accepts an entry aged 0', request: 'max-age=0', at: 0, expected: { kind: 'fresh' } },
    { name: '§5.2.1.1 request max-age=0 revalidates an entry aged 1 s', request: 'max-age=0', at: S, expected: { kind: 'revalidate', detail: 'request-max-age' } },
    { name: '§5.2.1.1 request max-age accepts an age equal to it', request: 'max-age=10', at: 10 * S, expected: { kind: 'fresh' } },
    { name: '§5.2.1.1 request max-age revalidates an older entry', request: 'max-age=10', at: 11 * S, expected: { kind: 'revalidate', detail: 'request-max-age' } },
    { name: '§5.2.1.1 request max-age counts the initial age', request: 'max-age=10', entry: { initialAge: 11 * S }, at: 0, expected: { kind: 'revalidate', detail: 'request-max-age' } },
    { name: '§5.2.1.1 an invalid request max-age revalidates', request: 'max-age=soon', at: 0, expected: { kind: 'revalidate', detail: 'request-max-age' } },
    { name: 'RFC 5861 §3 deliberately, a request max-age that the age satisfies still waits for revalidation of a stale entry', request: 'max-age=100', entry: { staleWhileRevalidate: 30 * S }, at: 70 * S, expected: { kind: 'revalidate', detail: 'stale' } },
    { name: '§5.2.1.3 min-fresh satisfied: fresh', request: 'min-fresh=20', at: 40 * S, expected: { kind: 'fresh' } },
    { name: '§5.2.1.3 min-fresh not satisfied: revalidate', request: 'min-fresh=20', at: 40 * S + 1, expected: { kind: 'revalidate', detail: 'request-min-fresh' } },
    { name: '§5.2.1.3 an invalid min-fresh is ignored', request: 'min-fresh=x', at: 59 * S, expected: { kind: 'fresh' } },
    { name: '§5.2.1.2 max-stale without a value accepts any staleness', request: 'max-stale', at: 1000 * S, expected: { kind: 'stale', detail: 'max-stale', refresh: false } },
    { name: '§5.2.1.2 max-stale=N accepts staleness up to N', request: 'max-stale=10', at: 70 * S, expected: { kind: 'stale', detail: 'max-stale', refresh: false } },
    { name: '§5.2.1.2 max-stale=N refuses staleness beyond N', request: 'max-stale=10', at: 70 * S + 1, expected: { kind: 'revalidate', detail: 'stale' } },
    { name: '§5.2.1.2 an invalid max-stale accepts nothing', request: 'max-stale=x', at: 61 * S, expected: { kind: 'revalidate', detail: 'stale' } },
    { name: '§5.2.1.2 max-stale beyond its limit falls back to stale-while-revalidate', request: 'max-stale=1', entry: { staleWhileRevalidate: 30 * S }, at: 70 * S, expected: { kind: 'stale', detail: 'stale-while-revalidate', refresh: true } },
    { name: '§5.2.1.2 max-stale does not affect a fresh entry', request: 'max-stale', at: 10 * S, expected: { kind: 'fresh' } },
    { name: '§5.2.1.4 request no-cache wins over max-stale', request: 'no-cache, max-stale', at: 70 * S, expected: { kind: 'revalidate', detail: 'request-no-cache' } },
    { name: '§5.2.2.2 must-revalidate still serves a fresh entry', entry: { mustRevalidate: true }, at: 10 * S, expected: { kind: 'fresh' } },
    { name: '§5.2.2.2 must-revalidate blocks stale-while-revalidate', entry: { mustRevalidate: true, staleWhileRevalidate: 30 * S }, at: 70 * S, expected: { kind: 'revalidate', detail: 'must-revalidate' } },
    { name: '§5.2.2.2 must-revalidate blocks max-stale', entry: { mustRevalidate: true }, request: 'max-stale', at: 70 * S, expected: { kind: 'revalidate', detail: 'must-revalidate' } },
    { name: 'soft purge: a fresh entry is stale from the purge on', entry: { invalidatedAt: T + 10 * S }, at: 10 * S, expected: { kind: 'revalidate', detail: 'purged' } },
    { name: 'soft purge: before the purge time the entry is still fresh', entry: { invalidatedAt: T + 10 * S }, at: 10 * S - 1, expected: { kind: 'fresh' } },
    { name: 'soft purge: a purged entry may be served stale-while-revalidate', entry: { invalidatedAt: T + 10 * S, staleWhileRevalidate: 30 * S }, at: 20 * S, expected: { kind: 'stale', detail: 'stale-while-revalidate', refresh: true } },
    { name: 'soft purge: the stale window counts from the purge', entry: { invalidatedAt: T + 10 * S, staleWhileRevalidate: 30 * S }, at: 40 * S, expected: { kind: 'revalidate', detail: 'purged' } },
    { name: 'soft purge: max-stale does not serve a purged entry', entry: { invalidatedAt: T + 10 * S }, request: 'max-stale', at: 20 * S, expected: { kind: 'revalidate', detail: 'purged' } },
    { name: 'soft purge: max-stale does not serve a purged entry that was stale anyway', entry: { invalidatedAt: T + 100 * S }, request: 'max-stale', at: 200 * S, expected: { kind: 'revalidate', detail: 'purged' } },
    { name: 'soft purge: must-revalidate is named first', entry: { invalidatedAt: T + 10 * S, mustRevalidate: true }, at: 20 * S, expected: { kind: 'revalidate', detail: 'must-revalidate' } }
  ]
  for (const row of rows) {
    const d = decide(entry(row.entry), parseCacheControl(row.request), T + row.at)
    const picked: Record<string, unknown> = { kind: d.kind }
    if ('detail' in row.expected) picked.detail = d.kind === 'fresh' ? undefined : d.detail
    if ('refresh' in row.expected) picked.refresh = d.kind === 'stale' ? d.refresh : undefined
    t.same(picked, row.expected, row.name)
  }
})

t.test('decide reports the current age and remaining freshness', async (t) => {
  const d = decide(entry({ initialAge: 5 * S }), parseCacheControl(undefined), T + 10 * S)
  t.same(d, { kind: 'fresh', age: 15 * S, ttl: 45 * S })
  const s = decide(entry({ staleWhileRevalidate: 30 * S }), parseCacheControl(undefined), T + 70 * S)
  t.same(s, { kind: 'stale', age: 70 * S, ttl: -10 * S, refresh: true, detail: 'stale-while-revalidate' })
})

t.test('remainingFreshness is negative once stale, and after a soft purge', async (t) => {
  t.equal(remainingFreshness(entry(), T + 10 * S), 50 * S)
  t.equal(remainingFreshness(entry(), T + 70 * S), -10 * S)
  t.equal(remainingFreshness(entry({ invalidatedAt: T + 10 * S }), T + 10 * S), -1, 'stale at the purge instant')
  t.equal(remainingFreshness(entry({ invalidatedAt: T + 10 * S }), T + 20 * S), -10 * S - 1)
  t.equal(remainingFreshness(entry({ invalidatedAt: T + 80 * S }), T + 100 * S), -40 * S, 'natural staleness when it is older than the purge')
})

t.test('requestDirectives folds Pragma: no-cache in only without Cache-Control (RFC 9111 §5.4)', async (t) => {
  const rows: Array<[string, string | undefined, string | undefined, Record<string, string | true>]> = [
    ['§5.4 Pragma: no-cache alone means no-cache', undefined, 'no-cache', { 'no-cache': true }],
    ['§5.4 Pragma is case-insensitive and a list', undefined, 'x-foo, No-Cache', { 'no-cache': true }],
    ['§5.4 Pragma is ignored when Cache-Control is present', 'max-age=10', 'no-cache', { 'max-age': '10' }],
    ['§5.4 other Pragma values mean nothing', undefined, 'no-cache-please', {}],
    ['§5.4 no Pragma, no Cache-Control, nothing', undefined, undefined, {}],
    ['§5.4 an empty Cache-Control does not hide Pragma', '', 'no-cache', { 'no-cache': true }]
  ]
  for (const [name, cc, pragma, expected] of rows) {
    t.same(Object.fromEntries(requestDirectives(parseCacheControl(cc), pragma)), expected, name)
  }
})

t.test('mayServeStaleOnError follows RFC 5861 §4', async (t) => {
  const rows: Array<{ name: string, entry?: Partial<CacheEntry>, request?: string, at: number, expected: boolean }> = [
    { name: 'RFC 5861 §4 within stale-if-error', entry: { staleIfError: 60 * S }, at: 120 * S - 1, expected: true },
    { name: 'RFC 5861 §4 at the end of stale-if-error (half-open, like retention)', entry: { staleIfError: 60 * S }, at: 120 * S, expected: false },
    { name: 'RFC 5861 §4 a window of 0 does not cover the instant of expiry', at: 60 * S, expected: false },
    { name: 'RFC 5861 §4 a fresh entry may always answer', at: 10 * S, expected: true },
    { name: 'RFC 5861 §4 no window, stale: no', at: 61 * S, expected: false },
    { name: 'RFC 5861 §4 the request\'s stale-if-error widens the window', request: 'stale-if-error=100', entry: { staleIfError: 10 * S }, at: 150 * S, expected: true },
    { name: 'RFC 5861 §4 the request\'s stale-if-error cannot narrow the window', request: 'stale-if-error=1', entry: { staleIfError: 100 * S }, at: 150 * S, expected: true },
    { name: 'RFC 5861 §4 an invalid request stale-if-error is ignored', request: 'stale-if-error=x', entry: { staleIfError: 10 * S }, at: 65 * S, expected: true },
    { name: '§4.2.4 must-revalidate forbids serving stale on error', entry: { staleIfError: 60 * S, mustRevalidate: true }, at: 70 * S, expected: false },
    { name: '§4.2.4 response no-cache forbids serving stale on error', entry: { staleIfError: 60 * S, noCache: true }, at: 70 * S, expected: false },
    { name: '§5.2.1.4 request no-cache forbids serving stale on error', entry: { staleIfError: 60 * S }, request: 'no-cache', at: 70 * S, expected: false },
    { name: 'soft purge: a purged entry may answer an error within the window', entry: { staleIfError: 60 * S, invalidatedAt: T + 10 * S }, at: 20 * S, expected: true },
    { name: 'soft purge: the window counts from the purge', entry: { staleIfError: 60 * S, invalidatedAt: T + 10 * S }, at: 71 * S, expected: false }
  ]
  for (const row of rows) t.equal(mayServeStaleOnError(entry(row.entry), parseCacheControl(row.request), T + row.at), row.expected, row.name)
})

t.test('ERROR_STATUSES are the origin errors stale-if-error covers', async (t) => {
  t.same([...ERROR_STATUSES].sort(), [500, 502, 503, 504])
})

t.test('refreshAheadDue refreshes hot keys probabilistically in the last tenth of their lifetime', async (t) => {
  const rows: Array<[string, number, number, number, boolean]> = [
    // name, freshness, ttl left, random, expected
    ['never before the last tenth', 100 * S, 10 * S, 0, false],
    ['just inside the last tenth the probability is near 0', 100 * S, 10 * S - 1, 0.5, false],
    ['half-way through the last tenth: probability one half (draw below)', 100 * S, 5 * S, 0.49, true],
    ['half-way through the last tenth: probability one half (draw above)', 100 * S, 5 * S, 0.5, false],
    ['just before expiry almost always', 100 * S, 1, 0.999, true],
    ['never once stale (decide handles that)', 100 * S, 0, 0, false],
    ['a short lifetime gets a window of at least one second', 2 * S, 900, 0.05, true],
    ['a zero lifetime never refreshes ahead', 0, -1, 0, false]
  ]
  for (const [name, freshness, ttl, random, expected] of rows) t.equal(refreshAheadDue({ freshness }, ttl, random), expected, name)
})
