/**
 * The hot path for the commonest request of all: a plain GET or HEAD whose fresh answer sits
 * in this process's memory (memory store, or the L1 tier). It is answered straight from the
 * Node request listener, before fastify routes it, with headers precomputed once per stored
 * entry. Anything else (conditionals, ranges, request directives, credentials, variants,
 * stale or absent entries) goes the full way through fastify and the read-through lifecycle,
 * which makes the same decision more slowly; this path only ever takes the "fresh" branch.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { formatCacheStatus } from '../cache/cache-status.ts'
import type { CacheEntry } from '../cache/entry.ts'
import { normalizeRequestUrl, type CacheKey } from '../cache/key.ts'
import { decide } from '../cache/policy.ts'
import type { Clock } from '../clock.ts'
import type { RouteMatcher } from '../config/routes.ts'
import type { GatewayConfig, RouteConfig } from '../config/types.ts'
import type { RequestOutcome } from '../observability/events.ts'
import type { Store } from '../store/store.ts'
import { ignoreFor } from './proxy.ts'
import { headersOfEntry, VIA } from './respond.ts'

export interface FastHitDeps {
  config: () => GatewayConfig
  routes: () => RouteMatcher
  store: Store
  clock: Clock
  onOutcome: (o: RequestOutcome) => void
}

const NO_DIRECTIVES = new Map<string, string | true>()

/** Request fields that make a request ask for more than a plain fresh hit. */
function plain (h: IncomingMessage['headers']): boolean {
  return h['cache-control'] === undefined && h.pragma === undefined && h.authorization === undefined &&
    h['if-none-match'] === undefined && h['if-modified-since'] === undefined && h.range === undefined &&
    h['if-range'] === undefined && h['if-match'] === undefined && h['if-unmodified-since'] === undefined
}

/** Downstream fields of an entry as a flat [name, value, …] list, computed once per stored object. */
const flat = new WeakMap<CacheEntry, { route: RouteConfig, list: string[] }>()
function flatHeaders (entry: CacheEntry, route: RouteConfig): string[] {
  const cached = flat.get(entry)
  if (cached?.route === route) return cached.list
  const list: string[] = []
  for (const [name, value] of Object.entries(headersOfEntry(entry, route))) {
    if (typeof value === 'string') list.push(name, value)
    else for (const v of value) list.push(name, v)
  }
  list.push('via', VIA)
  flat.set(entry, { route, list })
  return list
}

export class FastHit {
  readonly #d: FastHitDeps
  /** Normalized keys of recently seen (host, target) pairs: normalization is pure, so it is cached. */
  #keys = new Map<string, { route: RouteConfig, key: CacheKey } | null>()
  #enabled = true

  constructor (deps: FastHitDeps) {
    this.#d = deps
  }

  /** Stops answering (shutdown, reload): the full path takes every request. */
  disable (): void {
    this.#enabled = false
  }

  /** Forgets cached key normalizations (after a reload changed the routes). */
  reset (): void {
    this.#keys = new Map()
  }

  /** Answers the request when it is a plain fresh hit held in memory; false otherwise (nothing written). */
  serve (req: IncomingMessage, res: ServerResponse): boolean {
    const start = performance.now()
    const method = req.method
    if (!this.#enabled || (method !== 'GET' && method !== 'HEAD')) return false
    const store = this.#d.store
    if (store.peek === undefined) return false
    const h = req.headers
    const host = h.host
    const target = req.url
    if (host === undefined || target === undefined || !plain(h)) return false
    const scheme = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http'
    const resolved = this.#resolve(scheme, host, target)
    if (resolved === null) return false
    const { route, key } = resolved
    const entry = store.peek(key)
    if (entry === undefined || entry.url !== key || Object.keys(entry.vary).length > 0) return false
    const now = this.#d.clock.now()
    const decision = decide(entry, NO_DIRECTIVES, now)
    if (decision.kind !== 'fresh') return false
    const cacheStatus = formatCacheStatus({ hit: true, ttl: decision.ttl / 1000 })
    const headers = flatHeaders(entry, route).concat('age', String(Math.floor(decision.age / 1000)), 'cache-status', cacheStatus)
    res.writeHead(entry.status, headers)
    res.end(method === 'HEAD' ? undefined : entry.body)
    this.#d.onOutcome({
      route: route.name,
      method,
      url: key,
      outcome: 'hit',
      status: entry.status,
      cacheStatus,
      originStatus: undefined,
      collapsed: false,
      durationMs: performance.now() - start
    })
    return true
  }

  #resolve (scheme: string, host: string, target: string): { route: RouteConfig, key: CacheKey } | null {
    const id = `${scheme}\n${host}\n${target}`
    const known = this.#keys.get(id)
    if (known !== undefined) return known
    let result: { route: RouteConfig, key: CacheKey } | null = null
    if (target.length <= this.#d.config().limits.maxUrlLength) {
      const q = target.indexOf('?')
      const route = this.#d.routes().match(host, q === -1 ? target : target.slice(0, q))
      // Routes with key headers or cookies need the variant machinery; refresh-ahead needs the lifecycle.
      if (route !== undefined && route.enabled && route.key.headers.length === 0 && route.key.cookies.length === 0 && !route.refreshAhead) {
        const n = normalizeRequestUrl({ scheme, host, target }, ignoreFor(route))
        if (n.ok) result = { route, key: n.key }
      }
    }
    if (this.#keys.size >= 10_000) this.#keys = new Map() // bounded: a burst of unique URLs cannot grow it
    this.#keys.set(id, result)
    return result
  }
}
