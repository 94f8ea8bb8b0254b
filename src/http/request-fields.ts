/**
 * Small request facts shared by the public request paths (fast hit, proxy, purge method).
 */
import { ignoreMatcher } from '../cache/key.ts'
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
