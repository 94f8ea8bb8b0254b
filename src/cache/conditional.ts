/**
 * Conditional requests: validating a stored response with the origin (RFC 9111 §4.3.1),
 * merging a 304 into it (§4.3.4), and answering a client's own conditional request from a
 * stored response (RFC 9110 §13.1, §13.2.2).
 */
import type { CacheEntry, HeaderMap } from './entry.ts'
import { httpDate } from './freshness.ts'
import type { IncomingHeaders } from './headers.ts'
import { single, withoutHopByHop } from './headers.ts'

/** Headers for a conditional request that validates `entry` (§4.3.1). Empty when it has no validators. */
export function validatorHeaders (entry: Pick<CacheEntry, 'headers'>): Record<string, string> {
  const out: Record<string, string> = {}
  const etag = single(entry.headers.etag)
  const lastModified = single(entry.headers['last-modified'])
  if (etag !== undefined) out['if-none-match'] = etag
  if (lastModified !== undefined) out['if-modified-since'] = lastModified
  return out
}

export function hasValidators (entry: Pick<CacheEntry, 'headers'>): boolean {
  return entry.headers.etag !== undefined || entry.headers['last-modified'] !== undefined
}

/**
 * Fields a 304 must not change in the stored response (§4.3.4 and RFC 9110 §8.6: the body's
 * framing), and digests of the stored body (Content-MD5, RFC 9530 Content-Digest): a 304 has
 * no body, so its digest cannot describe the one kept.
 */
const KEEP_ON_304 = new Set(['content-length', 'content-encoding', 'content-range', 'transfer-encoding', 'content-md5', 'content-digest'])

/**
 * §4.3.4: the stored response's header fields are replaced by those in the 304, except the
 * fields that describe the stored body. Returns the merged header map.
 *
 * A 304 without a valid Date must not keep the stored response's Date: §4.2.3 would then
 * read the whole time since the original response as apparent age, and a freshened entry
 * would be stale on arrival. RFC 9110 §6.6.1 has the recipient add the time it received the
 * 304 (`receivedAt`, the response_time); without it the old Date is dropped, which every age
 * and freshness calculation here reads as the response time.
 */
export function merge304Headers (stored: HeaderMap, notModified: IncomingHeaders, receivedAt?: number): HeaderMap {
  const out: HeaderMap = { ...stored }
  // §3.2 excepts the fields §3.1 does not store: hop-by-hop ones and those named by Connection.
  for (const [name, value] of Object.entries(withoutHopByHop(notModified))) {
    if (KEEP_ON_304.has(name)) continue
    // The stored ETag validated this 304 (it was our If-None-Match): a different one in the
    // 304 would make the entry claim a representation it does not hold.
    if (name === 'etag' && stored.etag !== undefined) continue
    out[name] = value
  }
  if (httpDate(notModified.date) === undefined) {
    if (receivedAt !== undefined) out.date = new Date(receivedAt).toUTCString()
    else delete out.date
  }
  return out
}

/**
 * Does a 304 from the origin select this stored response (§4.3.4)? Deliberately, a stored
 * ETag always does: it was the If-None-Match the 304 answered (RFC 9110 §13.1.2), so the origin
 * said this representation is current; an ETag field in the 304 that differs (origins that
 * weaken or rewrite tags when they compress) is not merged (merge304Headers), as the
 * http-tests suite expects (304-etag-update-response-ETag). Without a stored ETag,
 * Last-Modified must agree. A 304 without validators selects the
 * entry it validated, deliberately: §4.3.4 asks that entry to lack validators too, but the 304
 * answers a conditional request made for exactly this entry, and origins often omit them.
 */
export function notModifiedMatches (stored: HeaderMap, notModified: IncomingHeaders): boolean {
  // A stored ETag was sent as If-None-Match: the 304 says it still matches, whatever ETag
  // field the 304 itself carries (which merge304Headers does not take).
  if (single(stored.etag) !== undefined) return true
  const newLm = single(notModified['last-modified'])
  const oldLm = single(stored['last-modified'])
  if (newLm !== undefined && oldLm !== undefined) return newLm === oldLm
  return true
}

function opaque (tag: string): string {
  const t = tag.trim()
  return t.startsWith('W/') ? t.slice(2) : t
}

/** RFC 9110 §8.8.3.2 weak comparison. */
export function weakCompare (a: string, b: string): boolean {
  return opaque(a) === opaque(b)
}

/**
 * RFC 9110 §13.2.2: may a GET/HEAD be answered 304 from this stored response?
 * If-None-Match wins over If-Modified-Since (§13.1.3).
 */
export function clientNotModified (stored: HeaderMap, request: IncomingHeaders): boolean {
  const inm = single(request['if-none-match'])
  if (inm !== undefined) {
    const etag = single(stored.etag)
    if (inm.trim() === '*') return true
    if (etag === undefined) return false
    return splitTags(inm).some((t) => weakCompare(t, etag))
  }
  const ims = httpDate(request['if-modified-since'])
  if (ims === undefined) return false
  const lastModified = httpDate(stored['last-modified']) ?? httpDate(stored.date)
  return lastModified !== undefined && lastModified <= ims
}

/** Splits an If-None-Match list, keeping commas inside quoted entity-tags. */
function splitTags (list: string): string[] {
  return list.match(/(?:W\/)?"[^"]*"/g) ?? []
}

/** Fields sent on a 304 from the stored response (RFC 9110 §15.4.5). */
export const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified']
