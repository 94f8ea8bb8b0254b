/**
 * Freshness and age (RFC 9111 §4.2), and the stale windows of RFC 5861.
 * All times in milliseconds.
 */
import { deltaSeconds, type Directives } from './cache-control.ts'
import type { CacheEntry } from './entry.ts'
import type { IncomingHeaders } from './headers.ts'
import { single } from './headers.ts'
import { HEURISTIC_STATUSES } from './storable.ts'

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)'
const LONG_DAY = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)'
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})'
// RFC 9110 §5.6.7: IMF-fixdate, and the obsolete rfc850-date and asctime-date a recipient must accept.
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`)
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`)
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`)

function utc (year: number, month: string, day: number, h: number, m: number, s: number): number | undefined {
  const mon = MONTHS.indexOf(month)
  // §5.6.7 allows a leap second (60); it is read as the last second of the minute.
  if (h > 23 || m > 59 || s > 60 || day < 1) return undefined
  // setUTCFullYear, unlike Date.UTC, does not read years 0-99 as 1900-1999.
  const d = new Date(0)
  d.setUTCFullYear(year, mon, day)
  d.setUTCHours(h, m, Math.min(s, 59), 0)
  // Rejects days the month does not have (Feb 30 would otherwise roll into March).
  return d.getUTCDate() === day ? d.getTime() : undefined
}

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7); undefined when absent or invalid. Only the three
 * formats of §5.6.7 are accepted, always as GMT: Date.parse would accept "0" or "2100" and
 * read an asctime-date in the local time zone.
 */
export function httpDate (value: string | readonly string[] | undefined): number | undefined {
  const text = single(value)?.trim()
  if (text === undefined) return undefined
  let m = IMF_FIXDATE.exec(text)
  if (m !== null) return utc(Number(m[3]), m[2] ?? '', Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]))
  m = RFC850_DATE.exec(text)
  if (m !== null) {
    // §5.6.7 reads a two-digit year relative to the current date; without a clock here,
    // deliberately, 00-69 are 2000-2069 and 70-99 are 1970-1999 (the usual fixed pivot).
    const yy = Number(m[3])
    return utc(yy < 70 ? 2000 + yy : 1900 + yy, m[2] ?? '', Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]))
  }
  m = ASCTIME_DATE.exec(text)
  if (m !== null) return utc(Number(m[6]), m[1] ?? '', Number((m[2] ?? '').trim()), Number(m[3]), Number(m[4]), Number(m[5]))
  return undefined
}

export interface FreshnessPolicy {
  /** Route default TTL (ms) used only without explicit freshness. */
  defaultTtl: number | undefined
  /** Cap on every lifetime (ms). */
  maxTtl: number | undefined
  /** Route defaults for the stale windows (ms), used where the origin sent none. */
  staleWhileRevalidate: number
  staleIfError: number
  /** Extra retention (ms) for entries with a validator, for conditional revalidation. */
  keep?: number
}

export interface Freshness {
  /** Freshness lifetime (ms). */
  lifetime: number
  /** How it was found, for /explain and logs. */
  source: 's-maxage' | 'max-age' | 'expires' | 'default-ttl' | 'heuristic' | 'none'
  staleWhileRevalidate: number
  staleIfError: number
}

/** Heuristic freshness is capped at one day, as common practice suggests (§4.2.2 leaves it open). */
const HEURISTIC_CAP = 86_400_000

/**
 * RFC 9111 §4.2.1: s-maxage, then max-age, then Expires minus Date; an invalid value makes
 * the response stale. Without explicit freshness: the route's default TTL, else §4.2.2
 * heuristic (10% of Date − Last-Modified) for heuristically cacheable statuses.
 */
export function freshnessLifetime (
  status: number,
  headers: IncomingHeaders,
  directives: Directives,
  targeted: boolean,
  responseTime: number,
  policy: FreshnessPolicy,
  /** False: only the origin's explicit freshness counts (no default TTL, no heuristic). */
  implicit = true
): Freshness {
  const cap = (ms: number): number => Math.max(0, policy.maxTtl === undefined ? ms : Math.min(ms, policy.maxTtl))
  const windows = staleWindows(directives, policy)
  const sm = deltaSeconds(directives, 's-maxage')
  if (sm !== undefined) return { lifetime: sm === 'invalid' ? 0 : cap(sm * 1000), source: 's-maxage', ...windows }
  const ma = deltaSeconds(directives, 'max-age')
  if (ma !== undefined) return { lifetime: ma === 'invalid' ? 0 : cap(ma * 1000), source: 'max-age', ...windows }
  if (!targeted && headers.expires !== undefined) {
    const expires = httpDate(headers.expires)
    // §5.3: an invalid Expires (e.g. "0") means already expired.
    if (expires === undefined) return { lifetime: 0, source: 'expires', ...windows }
    const date = httpDate(headers.date) ?? responseTime
    return { lifetime: cap(expires - date), source: 'expires', ...windows }
  }
  if (!implicit) return { lifetime: 0, source: 'none', ...windows }
  if (policy.defaultTtl !== undefined && HEURISTIC_STATUSES.has(status)) {
    return { lifetime: cap(policy.defaultTtl), source: 'default-ttl', ...windows }
  }
  const lastModified = httpDate(headers['last-modified'])
  if (lastModified !== undefined && (HEURISTIC_STATUSES.has(status) || directives.has('public'))) {
    const date = httpDate(headers.date) ?? responseTime
    const heuristic = Math.min(HEURISTIC_CAP, Math.max(0, (date - lastModified) / 10))
    return { lifetime: cap(Math.floor(heuristic)), source: 'heuristic', ...windows }
  }
  return { lifetime: 0, source: 'none', ...windows }
}

/** RFC 5861 windows from the response, else the route's defaults. Invalid values count as 0. */
export function staleWindows (directives: Directives, policy: Pick<FreshnessPolicy, 'staleWhileRevalidate' | 'staleIfError'>): { staleWhileRevalidate: number, staleIfError: number } {
  const swr = deltaSeconds(directives, 'stale-while-revalidate')
  const sie = deltaSeconds(directives, 'stale-if-error')
  return {
    staleWhileRevalidate: swr === undefined ? policy.staleWhileRevalidate : swr === 'invalid' ? 0 : swr * 1000,
    staleIfError: sie === undefined ? policy.staleIfError : sie === 'invalid' ? 0 : sie * 1000
  }
}

/**
 * RFC 9111 §4.2.3 corrected_initial_age, fixed when the response is received.
 *   apparent_age = max(0, response_time - date_value)
 *   response_delay = response_time - request_time
 *   corrected_age_value = age_value + response_delay
 *   corrected_initial_age = max(apparent_age, corrected_age_value)
 */
export function initialAge (headers: IncomingHeaders, requestTime: number, responseTime: number): number {
  const date = httpDate(headers.date)
  const apparentAge = date === undefined ? 0 : Math.max(0, responseTime - date)
  const ageValue = ageFieldValue(headers.age)
  const correctedAgeValue = ageValue + Math.max(0, responseTime - requestTime)
  return Math.max(apparentAge, correctedAgeValue)
}

/** §1.2.2: the largest delta-seconds a cache must represent; anything beyond counts as this. */
const MAX_DELTA_MS = 2147483648 * 1000

/**
 * The Age field (§5.1) in ms: 0 when absent. Age is a single delta-seconds: a huge value is
 * clamped to 2^31 s (§1.2.2); anything else (a sign, a fraction, a list, parameters, two field
 * lines, an empty value) is invalid freshness information, which §4.2.1 encourages caches to
 * treat as stale, so it counts as the oldest age there is rather than being ignored.
 */
export function ageFieldValue (value: string | readonly string[] | undefined): number {
  if (value === undefined) return 0
  if (typeof value !== 'string') return value.length === 1 && value[0] !== undefined ? ageFieldValue(value[0]) : MAX_DELTA_MS
  const text = value.trim()
  return /^\d+$/.test(text) ? Math.min(Number(text) * 1000, MAX_DELTA_MS) : MAX_DELTA_MS
}

/** §4.2.3 current_age = corrected_initial_age + resident_time. */
export function currentAge (entry: Pick<CacheEntry, 'initialAge' | 'responseTime'>, now: number): number {
  return entry.initialAge + Math.max(0, now - entry.responseTime)
}

/** How long the store keeps an entry: freshness plus both stale windows (RFC 5861). */
export function retention (entry: Pick<CacheEntry, 'freshness' | 'staleWhileRevalidate' | 'staleIfError' | 'initialAge' | 'headers'>, keep = 0): number {
  // A route's `keep` holds entries with a validator a little longer, for conditional revalidation.
  const validated = entry.headers.etag !== undefined || entry.headers['last-modified'] !== undefined
  return Math.max(0, entry.freshness - entry.initialAge) + Math.max(entry.staleWhileRevalidate, entry.staleIfError) + (validated ? keep : 0)
}
