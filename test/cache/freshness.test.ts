import t from 'tap'
import { effectiveResponseDirectives } from '../../src/cache/cache-control.ts'
import {
  currentAge,
  freshnessLifetime,
  httpDate,
  initialAge,
  retention,
  type Freshness,
  type FreshnessPolicy
} from '../../src/cache/freshness.ts'
import type { IncomingHeaders } from '../../src/cache/headers.ts'

const T = Date.UTC(2026, 0, 1, 12, 0, 0)
const S = 1000
const DAY = 86_400 * S
const date = (ms: number): string => new Date(ms).toUTCString()

t.test('httpDate accepts the three formats of RFC 9110 §5.6.7, as GMT', async (t) => {
  const nov6 = Date.UTC(1994, 10, 6, 8, 49, 37)
  const year50 = new Date(0).setUTCFullYear(50, 0, 1)
  const rows: Array<[string, string | string[] | undefined, number | undefined]> = [
    ['§5.6.7 IMF-fixdate', 'Sun, 06 Nov 1994 08:49:37 GMT', nov6],
    ['§5.6.7 obsolete RFC 850 format', 'Sunday, 06-Nov-94 08:49:37 GMT', nov6],
    ['§5.6.7 obsolete asctime format', 'Sun Nov  6 08:49:37 1994', nov6],
    ['§5.6.7 asctime with a two-digit day', 'Sun Nov 16 08:49:37 1994', Date.UTC(1994, 10, 16, 8, 49, 37)],
    ['§5.6.7 deliberately, RFC 850 years 00-69 are 20xx (no clock to pivot on)', 'Thursday, 01-Jan-26 00:00:00 GMT', Date.UTC(2026, 0, 1)],
    ['§5.6.7 RFC 850 years 70-99 are 19xx', 'Thursday, 01-Jan-70 00:00:00 GMT', 0],
    ['§5.6.7 a four-digit year below 100 is not read as 19xx', 'Sat, 01 Jan 0050 00:00:00 GMT', year50],
    ['§5.6.7 surrounding whitespace is ignored', '  Sun, 06 Nov 1994 08:49:37 GMT ', nov6],
    ['§5.6.7 a leap second is read as second 59', 'Wed, 31 Dec 2008 23:59:60 GMT', Date.UTC(2008, 11, 31, 23, 59, 59)],
    ['absent', undefined, undefined],
    ['§5.3 "0" is not a date', '0', undefined],
    ['a bare year is not a date', '2100', undefined],
    ['an ISO date is not an HTTP-date', '2026-01-01T00:00:00Z', undefined],
    ['another zone than GMT is not an HTTP-date', 'Sun, 06 Nov 1994 08:49:37 PST', undefined],
    ['a missing GMT is not an HTTP-date', 'Sun, 06 Nov 1994 08:49:37', undefined],
    ['lower-case month is not an HTTP-date (§5.6.7 is case-sensitive)', 'Sun, 06 nov 1994 08:49:37 GMT', undefined],
    ['a one-digit IMF day is not an HTTP-date', 'Sun, 6 Nov 1994 08:49:37 GMT', undefined],
    ['February 30 does not exist', 'Mon, 30 Feb 2026 00:00:00 GMT', undefined],
    ['hour 24 does not exist', 'Sun, 06 Nov 1994 24:00:00 GMT', undefined],
    ['minute 60 does not exist', 'Sun, 06 Nov 1994 08:60:00 GMT', undefined],
    ['day 00 does not exist', 'Sun, 00 Nov 1994 08:49:37 GMT', undefined],
    ['free text is not a date', 'Tomorrow 5', undefined],
    ['§4.2.1 two field lines are invalid', ['Sun, 06 Nov 1994 08:49:37 GMT', 'Sun, 06 Nov 1994 08:49:37 GMT'], undefined]
  ]
  for (const [name, value, expected] of rows) t.equal(httpDate(value), expected, name)
})

t.test('httpDate does not depend on the local time zone', async (t) => {
  const saved = process.env.TZ
  t.teardown(() => {
    if (saved === undefined) delete process.env.TZ
    else process.env.TZ = saved
  })
  process.env.TZ = 'America/New_York'
  t.equal(new Date(2026, 0, 1).getTimezoneOffset(), 300, 'the zone took effect')
  t.equal(httpDate('Sun Nov  6 08:49:37 1994'), Date.UTC(1994, 10, 6, 8, 49, 37), 'asctime is GMT')
  t.equal(httpDate('Sun, 06 Nov 1994 08:49:37 GMT'), Date.UTC(1994, 10, 6, 8, 49, 37), 'IMF-fixdate is GMT')
})

const policy = (p: Partial<FreshnessPolicy> = {}): FreshnessPolicy => ({
  defaultTtl: undefined,
  maxTtl: undefined,
  staleWhileRevalidate: 0,
  staleIfError: 0,
  ...p
})

interface Row {
  name: string
  status?: number
  headers: IncomingHeaders
  policy?: Partial<FreshnessPolicy>
  expected: Partial<Freshness>
}

t.test('freshnessLifetime follows RFC 9111 §4.2.1 and §4.2.2', async (t) => {
  const rows: Row[] = [
    { name: '§4.2.1 s-maxage wins over max-age', headers: { 'cache-control': 'max-age=10, s-maxage=20' }, expected: { lifetime: 20 * S, source: 's-maxage' } },
    { name: '§4.2.1 max-age wins over Expires', headers: { 'cache-control': 'max-age=10', date: date(T), expires: date(T + 100 * S) }, expected: { lifetime: 10 * S, source: 'max-age' } },
    { name: '§4.2.1 Expires minus Date', headers: { date: date(T - 5 * S), expires: date(T + 55 * S) }, expected: { lifetime: 60 * S, source: 'expires' } },
    { name: '§4.2.1 Expires without Date uses the response time', headers: { expires: date(T + 30 * S) }, expected: { lifetime: 30 * S, source: 'expires' } },
    { name: '§5.3 an invalid Expires means already expired', headers: { expires: '0' }, expected: { lifetime: 0, source: 'expires' } },
    { name: '§5.3 a bare-year Expires is invalid, not year 2100', headers: { expires: '2100' }, expected: { lifetime: 0, source: 'expires' } },
    { name: '§5.3 an Expires in the past gives 0', headers: { date: date(T), expires: date(T - 10 * S) }, expected: { lifetime: 0, source: 'expires' } },
    { name: '§4.2.1 an invalid s-maxage makes the response stale', headers: { 'cache-control': 's-maxage=x, max-age=60' }, expected: { lifetime: 0, source: 's-maxage' } },
    { name: '§4.2.1 an invalid max-age makes the response stale', headers: { 'cache-control': 'max-age=x', expires: date(T + 60 * S) }, expected: { lifetime: 0, source: 'max-age' } },
    { name: '§1.2.2 a huge max-age is clamped to 2^31 s', headers: { 'cache-control': 'max-age=99999999999' }, expected: { lifetime: 2147483648 * S, source: 'max-age' } },
    { name: 'RFC 9213 §2.2 a targeted field ignores Expires', headers: { 'cdn-cache-control': 'public', expires: date(T + 60 * S) }, expected: { lifetime: 0, source: 'none' } },
    { name: 'RFC 9213 §2.2 targeted max-age wins over Cache-Control', headers: { 'cdn-cache-control': 'max-age=5', 'cache-control': 'max-age=500' }, expected: { lifetime: 5 * S, source: 'max-age' } },
    { name: 'the default TTL applies without explicit freshness', headers: {}, policy: { defaultTtl: 42 * S }, expected: { lifetime: 42 * S, source: 'default-ttl' } },
    { name: 'the default TTL wins over the heuristic', headers: { date: date(T), 'last-modified': date(T - 100 * S) }, policy: { defaultTtl: 42 * S }, expected: { lifetime: 42 * S, source: 'default-ttl' } },
    { name: 'the default TTL does not replace explicit freshness', headers: { 'cache-control': 'max-age=7' }, policy: { defaultTtl: 42 * S }, expected: { lifetime: 7 * S, source: 'max-age' } },
    { name: 'the default TTL does not replace max-age=0', headers: { 'cache-control': 'max-age=0' }, policy: { defaultTtl: 42 * S }, expected: { lifetime: 0, source: 'max-age' } },
    { name: 'the default TTL does not replace an invalid Expires', headers: { expires: 'never' }, policy: { defaultTtl: 42 * S }, expected: { lifetime: 0, source: 'expires' } },
    { name: 'the default TTL is only for heuristically cacheable statuses', status: 500, headers: {}, policy: { defaultTtl: 42 * S }, expected: { lifetime: 0, source: 'none' } },
    { name: 'the default TTL applies to a 404', status: 404, headers: {}, policy: { defaultTtl: 42 * S }, expected: { lifetime: 42 * S, source: 'default-ttl' } },
    { name: '§4.2.2 heuristic: 10% of Date minus Last-Modified', headers: { date: date(T), 'last-modified': date(T - 1000 * S) }, expected: { lifetime: 100 * S, source: 'heuristic' } },
    { name: '§4.2.2 heuristic without Date uses the response time', headers: { 'last-modified': date(T - 1000 * S) }, expected: { lifetime: 100 * S, source: 'heuristic' } },
    { name: '§4.2.2 heuristic is capped at one day', headers: { date: date(T), 'last-modified': date(T - 30 * DAY) }, expected: { lifetime: DAY, source: 'heuristic' } },
    { name: '§4.2.2 a Last-Modified after Date gives 0', headers: { date: date(T), 'last-modified': date(T + 1000 * S) }, expected: { lifetime: 0, source: 'heuristic' } },
    { name: '§4.2.2 no heuristic for a non-heuristic status', status: 302, headers: { date: date(T), 'last-modified': date(T - 1000 * S) }, expected: { lifetime: 0, source: 'none' } },
    { name: '§4.2.2 heuristic for any status marked public', status: 302, headers: { 'cache-control': 'public', date: date(T), 'last-modified': date(T - 1000 * S) }, expected: { lifetime: 100 * S, source: 'heuristic' } },
    { name: '§4.2.2 no heuristic with an invalid Last-Modified', headers: { 'last-modified': 'yesterday' }, expected: { lifetime: 0, source: 'none' } },
    { name: '§4.2.2 without anything, lifetime 0', headers: {}, expected: { lifetime: 0, source: 'none' } },
    { name: 'maxTtl caps s-maxage', headers: { 'cache-control': 's-maxage=600' }, policy: { maxTtl: 60 * S }, expected: { lifetime: 60 * S } },
    { name: 'maxTtl caps max-age', headers: { 'cache-control': 'max-age=600' }, policy: { maxTtl: 60 * S }, expected: { lifetime: 60 * S } },
    { name: 'maxTtl caps Expires', headers: { expires: date(T + 600 * S) }, policy: { maxTtl: 60 * S }, expected: { lifetime: 60 * S } },
    { name: 'maxTtl caps the default TTL', headers: {}, policy: { defaultTtl: 600 * S, maxTtl: 60 * S }, expected: { lifetime: 60 * S } },
    { name: 'maxTtl caps the heuristic', headers: { 'last-modified': date(T - 6000 * S) }, policy: { maxTtl: 60 * S }, expected: { lifetime: 60 * S } },
    { name: 'maxTtl leaves shorter lifetimes alone', headers: { 'cache-control': 'max-age=6' }, policy: { maxTtl: 60 * S }, expected: { lifetime: 6 * S } },
    { name: 'RFC 5861 stale windows come from the response', headers: { 'cache-control': 'max-age=1, stale-while-revalidate=30, stale-if-error=300' }, policy: { staleWhileRevalidate: 5 * S, staleIfError: 7 * S }, expected: { staleWhileRevalidate: 30 * S, staleIfError: 300 * S } },
    { name: 'RFC 5861 stale windows default to the route\'s', headers: { 'cache-control': 'max-age=1' }, policy: { staleWhileRevalidate: 5 * S, staleIfError: 7 * S }, expected: { staleWhileRevalidate: 5 * S, staleIfError: 7 * S } },
    { name: 'RFC 5861 one window from the response, the other from the route', headers: { 'cache-control': 'stale-if-error=9' }, policy: { staleWhileRevalidate: 5 * S, staleIfError: 7 * S }, expected: { staleWhileRevalidate: 5 * S, staleIfError: 9 * S } },
    { name: 'RFC 5861 an invalid window counts as 0, not the route default', headers: { 'cache-control': 'stale-while-revalidate=x, stale-if-error=-1' }, policy: { staleWhileRevalidate: 5 * S, staleIfError: 7 * S }, expected: { staleWhileRevalidate: 0, staleIfError: 0 } },
    { name: 'RFC 5861 a window of 0 from the response overrides the route', headers: { 'cache-control': 'stale-while-revalidate=0' }, policy: { staleWhileRevalidate: 5 * S }, expected: { staleWhileRevalidate: 0 } }
  ]
  for (const row of rows) {
    const { directives, targeted } = effectiveResponseDirectives(row.headers)
    const f = freshnessLifetime(row.status ?? 200, row.headers, directives, targeted, T, policy(row.policy))
    const picked = Object.fromEntries(Object.keys(row.expected).map((k) => [k, f[k as keyof Freshness]]))
    t.same(picked, row.expected, row.name)
  }
})

t.test('initialAge is corrected_initial_age of RFC 9111 §4.2.3', async (t) => {
  const rows: Array<{ name: string, headers: IncomingHeaders, requestTime: number, responseTime: number, expected: number }> = [
    { name: '§4.2.3 no Date, no Age, no delay: 0', headers: {}, requestTime: T, responseTime: T, expected: 0 },
    { name: '§4.2.3 response_delay alone', headers: {}, requestTime: T - 2 * S, responseTime: T, expected: 2 * S },
    { name: '§4.2.3 apparent_age = response_time - date_value', headers: { date: date(T - 10 * S) }, requestTime: T, responseTime: T, expected: 10 * S },
    { name: '§4.2.3 apparent_age is never negative (Date in the future)', headers: { date: date(T + 10 * S) }, requestTime: T, responseTime: T, expected: 0 },
    { name: '§4.2.3 corrected_age_value = age_value + response_delay', headers: { age: '30' }, requestTime: T - 2 * S, responseTime: T, expected: 32 * S },
    { name: '§4.2.3 the larger of apparent age and corrected age value (apparent)', headers: { date: date(T - 60 * S), age: '30' }, requestTime: T - 2 * S, responseTime: T, expected: 60 * S },
    { name: '§4.2.3 the larger of apparent age and corrected age value (corrected)', headers: { date: date(T - 5 * S), age: '30' }, requestTime: T - 2 * S, responseTime: T, expected: 32 * S },
    // §4.2.1 encourages treating invalid freshness information as stale; an invalid Age is the
    // oldest age there is (2^31 s, §1.2.2), so the response is never reused without revalidation.
    { name: '§5.1 a negative Age makes the response stale', headers: { age: '-5' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 a fractional Age makes the response stale', headers: { age: '1.5' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 a non-numeric Age makes the response stale', headers: { age: 'abc' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 an empty Age makes the response stale', headers: { age: '' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 an Age list on one line makes the response stale', headers: { age: '0, 0' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 an Age list without spaces makes the response stale', headers: { age: '0,7200' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 an Age with a suffix makes the response stale', headers: { age: '7200,0' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 an Age with parameters makes the response stale', headers: { age: '0;foo=bar' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 two Age lines make the response stale, even when equal', headers: { age: ['0', '0'] }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§5.1 Age with surrounding whitespace is read', headers: { age: ' 7 ' }, requestTime: T, responseTime: T, expected: 7 * S },
    { name: '§5.1 Age with leading zeros is read', headers: { age: '007' }, requestTime: T, responseTime: T, expected: 7 * S },
    { name: '§1.2.2 a huge Age is clamped to 2^31 s', headers: { age: '99999999999' }, requestTime: T, responseTime: T, expected: 2147483648 * S },
    { name: '§4.2.3 an invalid Date is no apparent age', headers: { date: 'yesterday' }, requestTime: T, responseTime: T, expected: 0 }
  ]
  for (const row of rows) t.equal(initialAge(row.headers, row.requestTime, row.responseTime), row.expected, row.name)
})

t.test('currentAge adds resident time (RFC 9111 §4.2.3)', async (t) => {
  const entry = { initialAge: 5 * S, responseTime: T }
  t.equal(currentAge(entry, T), 5 * S, '§4.2.3 at response time, the initial age')
  t.equal(currentAge(entry, T + 10 * S), 15 * S, '§4.2.3 resident_time = now - response_time')
  t.equal(currentAge(entry, T - 10 * S), 5 * S, 'a clock behind the response time adds nothing')
})

t.test('retention keeps an entry for its remaining freshness and the longer stale window', async (t) => {
  const rows: Array<[string, { freshness: number, initialAge: number, staleWhileRevalidate: number, staleIfError: number, headers: Record<string, string> }, number]> = [
    ['fresh for 60 s, no windows', { freshness: 60 * S, initialAge: 0, staleWhileRevalidate: 0, staleIfError: 0, headers: {} }, 60 * S],
    ['§4.2.3 the initial age is already spent', { freshness: 60 * S, initialAge: 20 * S, staleWhileRevalidate: 0, staleIfError: 0, headers: {} }, 40 * S],
    ['RFC 5861 the longer window counts (stale-if-error)', { freshness: 60 * S, initialAge: 0, staleWhileRevalidate: 10 * S, staleIfError: 300 * S, headers: {} }, 360 * S],
    ['RFC 5861 the longer window counts (stale-while-revalidate)', { freshness: 60 * S, initialAge: 0, staleWhileRevalidate: 30 * S, staleIfError: 10 * S, headers: {} }, 90 * S],
    ['stale on arrival keeps only the window', { freshness: 10 * S, initialAge: 20 * S, staleWhileRevalidate: 30 * S, staleIfError: 0, headers: {} }, 30 * S],
    ['stale on arrival without windows is 0', { freshness: 10 * S, initialAge: 20 * S, staleWhileRevalidate: 0, staleIfError: 0, headers: {} }, 0]
  ]
  for (const [name, entry, expected] of rows) t.equal(retention(entry), expected, name)
  // A route's keep holds entries with a validator longer, for conditional revalidation.
  const base = { freshness: 60 * S, initialAge: 0, staleWhileRevalidate: 0, staleIfError: 30 * S }
  t.equal(retention({ ...base, headers: { etag: '"a"' } }, 600 * S), 690 * S, 'keep applies to an entry with an ETag')
  t.equal(retention({ ...base, headers: { 'last-modified': 'Sun, 01 Nov 2026 00:00:00 GMT' } }, 600 * S), 690 * S, 'keep applies to an entry with Last-Modified')
  t.equal(retention({ ...base, headers: {} }, 600 * S), 90 * S, 'keep does not apply without a validator')
})
