/**
 * Purge: resolve URLs, prefixes, tags and hosts to stored URLs through the store's indexes
 * (written at store time; never a keyspace scan), then delete them (hard) or mark them stale
 * (soft, revalidate), a bounded number at a time, and tell every instance to drop its L1 copy.
 *
 * `parsePurgeRequest` is pure: it validates a JSON body and names the bad field.
 * `Purger` drives the store; it knows nothing of HTTP.
 */
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { ignoreMatcher, normalizeAbsoluteUrl, originOf, type CacheKey } from '../cache/key.ts'
import type { Clock } from '../clock.ts'
import type { RouteMatcher } from '../config/routes.ts'
import type { RouteConfig } from '../config/types.ts'
import type { Store } from '../store/store.ts'
import { CLEAR_ALL } from '../store/tiered.ts'
import type { Bus } from '../coordination/bus.ts'
import type { CdnPurge } from './cdn/types.ts'
import { cdnPurgeOf, type ForwardReport } from './forwarder.ts'

export type PurgeMode = 'soft' | 'hard' | 'revalidate'
export type PurgeKind = 'url' | 'prefix' | 'tag' | 'host' | 'all' | 'method'

export interface PurgeRequest {
  urls: string[]
  prefixes: string[]
  tags: string[]
  hosts: string[]
  all: boolean
  mode: PurgeMode
}

export interface PurgeResult {
  /** Entries deleted (hard). */
  purged: number
  /** Entries marked stale (soft, revalidate). */
  marked: number
  mode: PurgeMode
  durationMs: number
  /** Each CDN's forward state, when CDNs are configured (forwarder.ts). */
  cdn?: ForwardReport[]
}

/** What one accepted purge did, for metrics. */
export interface PurgeEvent extends PurgeResult {
  kinds: PurgeKind[]
  /** URLs the selectors resolved to (some may have had no entry left). */
  urls: number
}

/**
 * Per-kind counts for metrics: one purge per kind it named (the PURGE method counts as a URL
 * purge); its entries go to the first kind named, since URLs reached by two selectors are
 * purged once.
 */
export function purgeCounts (event: PurgeEvent): Array<[Exclude<PurgeKind, 'method'>, number]> {
  const kinds = [...new Set(event.kinds.map((k) => k === 'method' ? 'url' : k))]
  return kinds.map((kind, i) => [kind, i === 0 ? event.purged + event.marked : 0])
}

/** What CDNs accept from CMSes (Fastly: 256 keys per call, 1 KB per key). */
export const PURGE_LIMITS = {
  /** Entries per list (urls, prefixes, tags, hosts). */
  maxItems: 256,
  maxTagBytes: 1024,
  maxUrlLength: 8192,
  maxHostLength: 262
} as const

/** Store calls in flight at once during one purge. */
export const PURGE_CONCURRENCY = 64
/** Background refreshes in flight at once for one revalidate purge. */
export const REVALIDATE_CONCURRENCY = 8
/**
 * Waits before the 2nd and 3rd attempt of a store call that failed (a command timeout under
 * load, a failover). Every purge step is idempotent, so a retry is always safe; a purge is
 * not on a client's path, so it can wait a little rather than fail half way.
 */
export const PURGE_RETRY_DELAYS_MS: readonly number[] = [50, 250]

export type Parsed<T> = { ok: true, value: T } | { ok: false, field: string, message: string }

const LISTS = ['urls', 'prefixes', 'tags', 'hosts'] as const
const FIELDS = new Set<string>([...LISTS, 'all', 'mode', 'soft'])
const MODES: readonly PurgeMode[] = ['soft', 'hard', 'revalidate']
// A host name or bracketed IPv6 literal, optionally with a port.
const HOST_RE = /^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::\d{1,5})?$/

function invalid (field: string, expected: string): { ok: false, field: string, message: string } {
  return { ok: false, field, message: `${field}: ${expected}` }
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Validates a purge body: `{ urls, prefixes, tags, hosts, all, mode, soft }`. Unknown fields
 * are refused (a misspelt `tag` must not purge nothing silently). At least one selector must
 * be present; empty lists are allowed (and purge nothing).
 */
export function parsePurgeRequest (body: unknown): Parsed<PurgeRequest> {
  if (!isRecord(body)) return invalid('body', 'expected a JSON object such as {"tags": ["product-123"]}')
  for (const name of Object.keys(body)) {
    if (!FIELDS.has(name)) return invalid(name, `unknown field (expected ${[...FIELDS].join(', ')})`)
  }
  const out: PurgeRequest = { urls: [], prefixes: [], tags: [], hosts: [], all: false, mode: 'hard' }
  let selectors = 0
  for (const list of LISTS) {
    const value = body[list]
    if (value === undefined) continue
    selectors++
    if (!Array.isArray(value)) return invalid(list, 'expected an array')
    if (value.length > PURGE_LIMITS.maxItems) return invalid(list, `expected at most ${PURGE_LIMITS.maxItems} entries, got ${value.length}`)
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      const field = `${list}[${i}]`
      const problem = checkItem(list, item)
      if (problem !== undefined) return invalid(field, problem)
      out[list].push(list === 'hosts' ? (item as string).toLowerCase() : item as string)
    }
  }
  if (body.all !== undefined) {
    if (typeof body.all !== 'boolean') return invalid('all', 'expected true or false')
    out.all = body.all
    if (body.all) selectors++
  }
  if (selectors === 0) return invalid('body', 'expected at least one of urls, prefixes, tags, hosts or "all": true')

  if (body.mode !== undefined) {
    if (typeof body.mode !== 'string' || !(MODES as readonly string[]).includes(body.mode)) {
      return invalid('mode', 'expected "soft", "hard" or "revalidate"')
    }
    out.mode = body.mode as PurgeMode
  }
  if (body.soft !== undefined) {
    if (typeof body.soft !== 'boolean') return invalid('soft', 'expected true or false')
    const implied: PurgeMode = body.soft ? 'soft' : 'hard'
    if (body.mode !== undefined && body.mode !== implied) return invalid('soft', `${String(body.soft)} conflicts with mode "${out.mode}"`)
    out.mode = implied
  }
  return { ok: true, value: out }
}

function checkItem (list: typeof LISTS[number], item: unknown): string | undefined {
  switch (list) {
    case 'tags':
      if (typeof item !== 'string' || Buffer.byteLength(item) > PURGE_LIMITS.maxTagBytes) return `expected a string of at most ${PURGE_LIMITS.maxTagBytes} bytes`
      if (item === '') return 'expected a non-empty string'
      return undefined
    case 'urls':
    case 'prefixes': {
      const example = list === 'urls' ? 'https://shop.example/products/123' : 'https://shop.example/products/'
      if (typeof item !== 'string' || item.length > PURGE_LIMITS.maxUrlLength) return `expected an absolute http(s) URL of at most ${PURGE_LIMITS.maxUrlLength} characters`
      // A prefix's query part is matched as written; only its scheme, host and path are normalized.
      const n = normalizeAbsoluteUrl(list === 'urls' ? item : splitQuery(item)[0])
      if (!n.ok) return `expected an absolute http(s) URL with a host, such as "${example}" (${n.reason})`
      return undefined
    }
    case 'hosts':
      if (typeof item !== 'string' || item.length > PURGE_LIMITS.maxHostLength || !HOST_RE.test(item.toLowerCase())) {
        return 'expected a host name, optionally with a port, such as "shop.example" or "shop.example:8080"'
      }
      return undefined
  }
}

function splitQuery (url: string): [string, string | undefined] {
  const q = url.indexOf('?')
  return q === -1 ? [url, undefined] : [url.slice(0, q), url.slice(q + 1)]
}

/** The route that serves a stored URL, and the path and query forwarded for it. */
export function routeOfKey (routes: RouteMatcher, key: CacheKey): { route: RouteConfig, path: string } | undefined {
  const origin = originOf(key)
  const path = key.slice(origin.length) || '/'
  const authority = origin.slice(origin.indexOf('://') + 3)
  const route = routes.match(authority, path)
  return route === undefined ? undefined : { route, path }
}

/** The same URL under the other scheme: behind TLS termination https traffic is keyed as http. */
function bothSchemes (key: string): string[] {
  if (key.startsWith('https://')) return [key, 'http://' + key.slice(8)]
  if (key.startsWith('http://')) return [key, 'https://' + key.slice(7)]
  return [key]
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function forEachLimit<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await fn(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/**
 * Above this many URLs a purge is announced with one `*` message (every instance drops its
 * whole L1) instead of one message per URL: a tag purge of 100,000 entries would otherwise
 * send 100,000 messages to every instance. The L1 is small and short-lived; refilling it
 * costs one Redis read per hot key.
 */
export const BULK_PURGE_URLS = 1000

/** Publishes each URL on the invalidation channel (every instance drops its L1 copy); `*` for a bulk purge. */
export async function announceInvalidations (bus: Bus, channel: string, urls: readonly CacheKey[]): Promise<void> {
  if (urls.length > BULK_PURGE_URLS) {
    await bus.publish(channel, CLEAR_ALL)
    return
  }
  await forEachLimit(urls, PURGE_CONCURRENCY, async (url) => await bus.publish(channel, url))
}

/** The store calls that change entries. */
export type PurgeTarget = Pick<Store, 'deleteUrl' | 'markStale'>

export interface PurgerOptions {
  store: Store
  clock: Clock
  routes: () => RouteMatcher
  /**
   * Tells other instances which URLs changed. Undefined when the store publishes its own
   * changes (TieredStore), so a purge is not announced twice.
   */
  announce?: (urls: readonly CacheKey[]) => Promise<void>
  /**
   * For purges of more than BULK_PURGE_URLS URLs when the store announces its own changes
   * (TieredStore.bulk): runs `apply` against a target whose changes are not announced one by
   * one, then announces them all at once.
   */
  bulk?: (apply: (target: PurgeTarget) => Promise<void>) => Promise<void>
  /** Fetches a URL afresh in the background (ReadThrough.refresh); resolves when done. */
  refresh: (route: RouteConfig, key: CacheKey, path: string) => Promise<unknown>
  /** Runs the refreshes of a revalidate purge in the background, awaitable by tests and shutdown. */
  background: (name: string, fn: () => Promise<unknown>) => void
  onPurge?: (event: PurgeEvent) => void
  /** Forwards a purge that succeeded here to the CDNs in front (gateway first, then CDN). */
  forward?: (purge: CdnPurge) => Promise<ForwardReport[]>
  /** Overrides PURGE_RETRY_DELAYS_MS (tests). */
  retryDelaysMs?: readonly number[]
}

export class Purger {
  readonly #o: PurgerOptions
  /** The store's index reads, retried (see PURGE_RETRY_DELAYS_MS); changes are retried in #apply. */
  readonly #store: Pick<Store, 'urlsForTag' | 'urlsForPrefix' | 'origins'>

  constructor (options: PurgerOptions) {
    this.#o = options
    const s = options.store
    const retry = async <T>(call: () => Promise<T>): Promise<T> => await this.#retry(call)
    this.#store = {
      urlsForTag: async (tag) => await retry(async () => await s.urlsForTag(tag)),
      urlsForPrefix: async (origin, prefix) => await retry(async () => await s.urlsForPrefix(origin, prefix)),
      origins: async () => await retry(async () => await s.origins())
    }
  }

  async #retry<T> (call: () => Promise<T>): Promise<T> {
    return await withRetries(call, this.#o.retryDelaysMs ?? PURGE_RETRY_DELAYS_MS)
  }

  /** Resolves a validated request to stored URLs and purges them. Store errors reject. */
  async purge (request: PurgeRequest): Promise<PurgeResult> {
    const started = performance.now()
    const urls = await this.resolve(request)
    const kinds: PurgeKind[] = []
    if (request.urls.length > 0) kinds.push('url')
    if (request.prefixes.length > 0) kinds.push('prefix')
    if (request.tags.length > 0) kinds.push('tag')
    if (request.hosts.length > 0) kinds.push('host')
    if (request.all) kinds.push('all')
    const result = await this.#apply([...urls], request.mode, kinds, started)
    if (this.#o.forward !== undefined) result.cdn = await this.#o.forward(cdnPurgeOf(request))
    return result
  }

  /** Purges stored URLs named exactly (the PURGE method: the request's own key). */
  async purgeKeys (keys: readonly CacheKey[], mode: PurgeMode, kind: PurgeKind): Promise<PurgeResult> {
    const result = await this.#apply([...new Set(keys)], mode, [kind], performance.now())
    if (this.#o.forward !== undefined) result.cdn = await this.#o.forward(cdnPurgeOf({ urls: keys, prefixes: [], tags: [], hosts: [], all: false, mode }))
    return result
  }

  /** Every stored URL a request selects (index members may name URLs already gone). */
  async resolve (request: PurgeRequest): Promise<Set<CacheKey>> {
    const store = this.#store
    const routes = this.#o.routes()
    const out = new Set<CacheKey>()
    const addAll = (keys: readonly CacheKey[]): void => { for (const k of keys) out.add(k) }

    for (const url of request.urls) {
      // Normalized exactly as the cache key: the matching route's ignoreQuery applies.
      const plain = normalizeAbsoluteUrl(url)
      if (!plain.ok) continue // parsePurgeRequest refused it already
      const route = routes.match(plain.authority, plain.pathAndQuery)
      const n = route === undefined ? plain : normalizeAbsoluteUrl(url, ignoreMatcher(route.key.ignoreQuery))
      if (n.ok) for (const k of bothSchemes(n.key)) out.add(k as CacheKey)
    }

    const lookups: Array<() => Promise<CacheKey[]>> = []
    for (const prefix of request.prefixes) {
      const [base, query] = splitQuery(prefix)
      const n = normalizeAbsoluteUrl(base)
      if (!n.ok) continue
      // The query part of a prefix is matched as written (normalizing would sort it).
      const normalized = query === undefined ? n.key : `${n.key}?${query}`
      for (const p of bothSchemes(normalized)) {
        lookups.push(async () => await store.urlsForPrefix(originOf(p), p))
      }
    }
    for (const tag of request.tags) lookups.push(async () => await store.urlsForTag(tag))
    if (request.all || request.hosts.length > 0) {
      const hosts = new Set(request.hosts)
      for (const origin of await store.origins()) {
        if (request.all || matchesHost(origin, hosts)) lookups.push(async () => await store.urlsForPrefix(origin, ''))
      }
    }
    await forEachLimit(lookups, PURGE_CONCURRENCY, async (lookup) => addAll(await lookup()))
    return out
  }

  async #apply (urls: CacheKey[], mode: PurgeMode, kinds: PurgeKind[], started: number): Promise<PurgeResult> {
    const now = this.#o.clock.now()
    let purged = 0
    let marked = 0
    const found: CacheKey[] = []
    const run = async (target: PurgeTarget): Promise<void> => {
      await forEachLimit(urls, PURGE_CONCURRENCY, async (url) => {
        if (mode === 'hard') {
          const n = await this.#retry(async () => await target.deleteUrl(url))
          purged += n
        } else {
          const n = await this.#retry(async () => await target.markStale(url, now))
          marked += n
          if (n > 0) found.push(url)
        }
      })
    }
    if (this.#o.bulk !== undefined && urls.length > BULK_PURGE_URLS) {
      await this.#o.bulk(run)
    } else {
      await run(this.#o.store)
    }
    if (this.#o.announce !== undefined) await this.#o.announce(urls)
    if (mode === 'revalidate' && found.length > 0) this.#revalidate(found)
    const result: PurgeResult = { purged, marked, mode, durationMs: Math.round((performance.now() - started) * 100) / 100 }
    this.#o.onPurge?.({ ...result, kinds, urls: urls.length })
    return result
  }

  /** Refreshes the marked URLs in the background, a few at a time, so the next client gets fresh content. */
  #revalidate (urls: CacheKey[]): void {
    const routes = this.#o.routes()
    const targets = urls.flatMap((key) => {
      const hit = routeOfKey(routes, key)
      return hit !== undefined && hit.route.enabled ? [{ key, ...hit }] : []
    })
    this.#o.background('purge-revalidate', async () => {
      await forEachLimit(targets, REVALIDATE_CONCURRENCY, async (t) => { await this.#o.refresh(t.route, t.key, t.path) })
    })
  }
}

/** Calls `call`, and again after each delay while it rejects; the last rejection is thrown. */
async function withRetries<T> (call: () => Promise<T>, delays: readonly number[]): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call()
    } catch (err) {
      const wait = delays[attempt]
      if (wait === undefined) throw err
      await delay(wait)
    }
  }
}

/**
 * Whether an origin (scheme://authority) belongs to one of the hosts: `host:port` names
 * that authority exactly; a bare host name matches it on every port and both schemes.
 */
function matchesHost (origin: string, hosts: ReadonlySet<string>): boolean {
  const authority = origin.slice(origin.indexOf('://') + 3)
  if (hosts.has(authority)) return true
  const colon = authority.startsWith('[') ? authority.indexOf(':', authority.indexOf(']')) : authority.lastIndexOf(':')
  return colon !== -1 && hosts.has(authority.slice(0, colon))
}
