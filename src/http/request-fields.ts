/**
 * Small request facts shared by the public request paths (fast hit, proxy, purge method).
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { ignoreMatcher, keyOf, normalizeTarget, type KeyInput, type NormalizedUrl } from '../cache/key.ts'
import type { RouteMatcher } from '../config/routes.ts'
import type { RouteConfig } from '../config/types.ts'

/** The route's ignoreQuery matcher (compiled once per route). */
export function ignoreFor (route: RouteConfig): (name: string) => boolean {
  return ignoreMatcher(route.key.ignoreQuery)
}

/** How many Host fields a request carried (Node keeps only the first in `headers`). */
export function hostFields (rawHeaders: readonly string[]): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]?.length === 4 && rawHeaders[i]?.toLowerCase() === 'host') n++
  return n
}

export type ResolvedRequest =
  | { ok: true, route: RouteConfig, url: Extract<NormalizedUrl, { ok: true }> }
  | { ok: false, problem: 'malformed', reason: string }
  | { ok: false, problem: 'no-route' }

/**
 * The route and the normalized URL of a request. The route is matched on the normalized path,
 * the same value the key and the forwarded path are built from: `/x/../api` and `/x/%2e%2e/api`
 * are routed as `/api`, so a request can never reach one route's origin under another route's key.
 */
export function resolveRequest (routes: RouteMatcher, input: KeyInput): ResolvedRequest {
  const target = normalizeTarget(input)
  if (!target.ok) return { ok: false, problem: 'malformed', reason: target.reason }
  const route = routes.match(input.host, target.path)
  if (route === undefined) return { ok: false, problem: 'no-route' }
  const url = keyOf(target, ignoreFor(route))
  if (!url.ok) return { ok: false, problem: 'malformed', reason: url.reason }
  return { ok: true, route, url }
}

/**
 * The scheme a client spoke to this listener: https only on a TLS socket. Forwarding fields
 * from the client are never trusted for it (fastify's trustProxy is off), so both request
 * paths key an https request as https and a plain one as http, whatever it claims.
 */
export function requestScheme (socket: Socket): 'http' | 'https' {
  return (socket as TLSSocket).encrypted === true ? 'https' : 'http'
}

/** Is `name` (any case) equal to `lower` (lowercase)? Common spellings first: no allocation. */
function named (name: string, lower: string, canonical: string): boolean {
  return name === lower || name === canonical || name.toLowerCase() === lower
}

/**
 * Can this request be answered by a plain fresh hit, without the lifecycle? Only a GET or HEAD
 * with exactly one Host field (several get a 400, RFC 9112 §3.2) and none of the fields that
 * ask for more than the stored response as it is: request directives (Cache-Control, Pragma),
 * credentials (Authorization changes who may be answered from the cache), conditionals and
 * ranges. The fast path answers only such requests; every other one goes the full way, where
 * the same stored entry gets the same decision (test/integration/one-hit-rule.test.ts).
 *
 * Returns the one Host value, or undefined when the request is not plain. It reads the raw
 * field list, not `req.headers`: Node builds that object on first use, and a hit need not.
 */
export function plainHitHost (method: string | undefined, raw: readonly string[]): string | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined
  let host: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    switch (name.length) {
      case 4:
        if (named(name, 'host', 'Host')) {
          if (host !== undefined) return undefined
          host = raw[i + 1]
        }
        break
      case 5:
        if (named(name, 'range', 'Range')) return undefined
        break
      case 6:
        if (named(name, 'pragma', 'Pragma')) return undefined
        break
      case 8:
        if (named(name, 'if-range', 'If-Range') || named(name, 'if-match', 'If-Match')) return undefined
        break
      case 13:
        if (named(name, 'cache-control', 'Cache-Control') || named(name, 'authorization', 'Authorization') || named(name, 'if-none-match', 'If-None-Match')) return undefined
        break
      case 17:
        if (named(name, 'if-modified-since', 'If-Modified-Since')) return undefined
        break
      case 19:
        if (named(name, 'if-unmodified-since', 'If-Unmodified-Since')) return undefined
        break
    }
  }
  return host
}

/**
 * Can a route's hits be answered without the lifecycle? Not when caching is off, when the key
 * has headers or cookies (the variant machinery picks the entry) or with refresh-ahead (a hit
 * may start a refresh).
 */
export function plainHitRoute (route: RouteConfig): boolean {
  return route.enabled && route.key.headers.length === 0 && route.key.cookies.length === 0 && !route.refreshAhead
}
