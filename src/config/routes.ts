/**
 * Route matching, compiled once per configuration and run once per request.
 *
 * First match in file order wins. A route's host is compared lower-case without port; a route
 * without host matches every host. A route's path is a prefix that ends on a segment boundary:
 * "/api" matches "/api", "/api/", "/api/x" and "/api?q", never "/apix"; "/" and prefixes ending
 * in "/" match everything below them.
 */
import type { RouteConfig } from './types.ts'

export interface RouteMatcher {
  /** `host`: the request's Host (any case, with or without port); `path`: the request target, query allowed. */
  match (host: string | undefined, path: string): RouteConfig | undefined
}

/**
 * The host part of a Host header, lower-case, without port or trailing dot:
 * "API.example.com:8080" -> "api.example.com", "[::1]:8080" -> "[::1]".
 */
export function normalizeRequestHost (host: string): string {
  let name = host.toLowerCase()
  if (name.startsWith('[')) {
    const end = name.indexOf(']')
    name = end === -1 ? name : name.slice(0, end + 1)
  } else {
    const colon = name.indexOf(':')
    if (colon !== -1) name = name.slice(0, colon)
  }
  return name.endsWith('.') ? name.slice(0, -1) : name
}

/**
 * A configured route host in the form normalizeRequestHost produces: lower-case, no trailing
 * dot, IPv6 in brackets ("::1" -> "[::1]").
 */
export function normalizeRouteHost (host: string): string {
  const name = host.toLowerCase()
  if (name.includes(':') && !name.startsWith('[')) return `[${name}]`
  return name.endsWith('.') ? name.slice(0, -1) : name
}

/** Whether a route path prefix covers a request path (which may carry a query). */
export function pathMatches (prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false
  if (prefix.endsWith('/') || path.length === prefix.length) return true
  const next = path.charCodeAt(prefix.length)
  return next === 0x2f /* / */ || next === 0x3f /* ? */ || next === 0x23 /* # */
}

export function compileRoutes (routes: readonly RouteConfig[]): RouteMatcher {
  // Per host, the routes that can answer it in file order: its own and the host-less ones.
  // A host that no route names gets the host-less list. Lookup is one Map get, then a short scan.
  const hosts = routes.map((route) => route.host === undefined ? undefined : normalizeRouteHost(route.host))
  const anyHost = routes.filter((_route, index) => hosts[index] === undefined)
  const byHost = new Map<string, RouteConfig[]>()
  for (const host of hosts) {
    if (host !== undefined && !byHost.has(host)) {
      byHost.set(host, routes.filter((_route, index) => hosts[index] === undefined || hosts[index] === host))
    }
  }
  return {
    match (host, path) {
      const candidates = host === undefined || byHost.size === 0
        ? anyHost
        : byHost.get(normalizeRequestHost(host)) ?? anyHost
      for (const route of candidates) {
        if (pathMatches(route.path, path)) return route
      }
      return undefined
    }
  }
}
