/**
 * A POST response kept as the GET response of its URL. RFC 9110 §9.3.3: a response to POST is
 * cacheable only with explicit freshness and a Content-Location equal to the target URI, and
 * may then answer a later GET of that URI. Everything else is as for a GET response (RFC 9111
 * §3); the §4.4 invalidation the POST causes (invalidate.ts) happens before the entry is stored.
 */
import { effectiveResponseDirectives } from './cache-control.ts'
import { single, type IncomingHeaders } from './headers.ts'
import { sameOriginKey } from './invalidate.ts'
import { ignoreMatcher, type CacheKey } from './key.ts'
import { prepareEntry, type EntryPolicy, type OriginAnswer, type Prepared } from './prepare.ts'
import { credentials, explicitFreshness, sharedWithCredentials, type Storability } from './storable.ts'

/** A route's storage and freshness policy, and its ignored query parameters (Content-Location is keyed as requests are). */
export type PostPolicy = EntryPolicy & { key: { readonly cookies: readonly string[], readonly ignoreQuery: readonly string[] } }

/**
 * 200 and 203 carry a representation of the target (RFC 9110 §15.3.1, §15.3.4); a 201 or a
 * redirect is about another resource, and a 204 has no body to answer a GET with.
 */
const AS_GET_STATUSES = new Set([200, 203])

const no = (detail: string): { storable: false, detail: string } => ({ storable: false, detail })

/**
 * Does this POST response present itself as the GET response of the POST's URL? The cheap part
 * of the rule, decided before any byte is captured: a 200 or 203, freshness the origin gave
 * itself (s-maxage, max-age, Expires; never heuristic nor a route's defaultTtl), and a
 * Content-Location that, resolved against the request and normalized as keys are, is the same
 * key: another path, query, host, port or scheme is not.
 */
export function postAsGet (status: number, headers: IncomingHeaders, url: CacheKey, policy: Pick<PostPolicy, 'key'>): Storability {
  if (!AS_GET_STATUSES.has(status)) return no('post-status')
  const { directives, targeted } = effectiveResponseDirectives(headers)
  if (!explicitFreshness(headers, directives, targeted)) return no('post-freshness')
  const location = single(headers['content-location'])
  if (location === undefined || sameOriginKey(location, url, ignoreMatcher(policy.key.ignoreQuery)) !== url) return no('content-location')
  return { storable: true }
}

/**
 * The entry a POST response becomes, or why it does not. Beyond postAsGet, deliberately
 * stricter than for a GET: a POST with credentials (Authorization, or a cookie the route does
 * not key on) acts for one user, so the origin's freshness is not enough; it is shared only
 * with §3.5's permission (public, s-maxage, must-revalidate). Then every rule a GET response
 * meets (storable.ts, Vary, stale on arrival), with the origin's own freshness and stale
 * windows only: a route's defaultTtl and stale windows never apply.
 */
export function preparePost (answer: OriginAnswer, policy: PostPolicy): Prepared {
  const gate = postAsGet(answer.status, answer.headers, answer.url, policy)
  if (!gate.storable) return gate
  // The route's implicitCachingWithCookies does not count here: it opts into implicit
  // freshness for cookies, never into sharing what a POST with credentials got.
  const carried = credentials(answer.requestHeaders, policy.key)
  if (carried !== undefined && !sharedWithCredentials(effectiveResponseDirectives(answer.headers).directives)) return no(carried)
  return prepareEntry({ ...answer, method: 'GET' }, { ...policy, defaultTtl: undefined, staleWhileRevalidate: 0, staleIfError: 0 })
}
