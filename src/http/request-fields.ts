/**
 * Small request facts shared by the public request paths (fast hit, proxy, purge method).
 */
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
