/**
 * Debugging a caching decision (GET /explain on the admin listener): for one URL, which
 * route matches, the cache key, the variants stored with their age, freshness, remaining
 * stale windows and tags, and why the last response for the key was or was not stored.
 *
 * The last storability decision per key comes from a small LRU the read-through keeps
 * (DecisionLog), filled where it calls prepareEntry: it is per process, so with several
 * instances or workers it shows what this one saw. The store has no "list variants" call, so
 * the variants shown are the URL's no-Vary entry, the variants this process stored recently,
 * and the one the explain request's own `header` parameters select; each is read from the
 * store, so what is shown is what is stored now.
 */
import type { CacheEntry } from '../cache/entry.ts'
import type { IncomingHeaders } from '../cache/headers.ts'
import { globMatcher, NO_VARIANT, normalizeAbsoluteUrl, type CacheKey, type VariantId } from '../cache/key.ts'
import { decide } from '../cache/policy.ts'
import { mergeSpec, variantId, variantValues } from '../cache/vary.ts'
import type { RouteMatcher } from '../config/routes.ts'
import type { Store } from '../store/store.ts'
import { BoundedMap, type BoundedMapStats } from '../bounded-map.ts'

/** Why the last origin response for a key was or was not stored. */
export interface StorageDecision {
  /** When it was decided (ms since the epoch). */
  at: number
  /** The origin's status (the stored status after a 304). */
  status: number
  stored: boolean
  /** The reason it was not stored, in the words of Cache-Status' detail; 'not-modified' after a 304. */
  detail: string | undefined
  /** Where the freshness lifetime came from (max-age, s-maxage, expires, default-ttl, heuristic, none). */
  freshnessSource: string | undefined
  variant: VariantId
}

interface KeyRecord {
  last: StorageDecision
  /** Variants seen stored for the key, most recent last. */
  variants: Map<VariantId, Readonly<Record<string, string | null>>>
}

const MAX_VARIANTS_REMEMBERED = 64

/** Estimated bytes of a record: its variants' values (the decision itself is small and fixed). */
function recordBytes (record: KeyRecord): number {
  let bytes = 128
  for (const [id, values] of record.variants) {
    bytes += id.length * 2 + 64
    for (const [name, value] of Object.entries(values)) bytes += (name.length + (value?.length ?? 0)) * 2 + 32
  }
  return bytes
}

/**
 * The last storability decision per key, for the most recently decided keys: bounded in keys
 * and in bytes (src/bounded-map.ts), since keys and variant values come from clients.
 */
export class DecisionLog {
  readonly #keys: BoundedMap<CacheKey, KeyRecord>

  constructor (size = 10_000, maxBytes = 16 * 1024 * 1024) {
    this.#keys = new BoundedMap({ maxEntries: size, maxBytes, sizeOf: recordBytes })
  }

  record (key: CacheKey, decision: StorageDecision, values: Readonly<Record<string, string | null>>): void {
    const existing = this.#keys.peek(key)
    const variants = existing?.variants ?? new Map<VariantId, Readonly<Record<string, string | null>>>()
    if (decision.stored) {
      variants.delete(decision.variant)
      variants.set(decision.variant, values)
      if (variants.size > MAX_VARIANTS_REMEMBERED) variants.delete(variants.keys().next().value as VariantId)
    }
    // set() measures the record again (its variants may have grown) and marks it most recent.
    this.#keys.set(key, { last: decision, variants })
  }

  last (key: CacheKey): StorageDecision | undefined {
    return this.#keys.peek(key)?.last
  }

  variants (key: CacheKey): ReadonlyMap<VariantId, Readonly<Record<string, string | null>>> {
    return this.#keys.peek(key)?.variants ?? new Map()
  }

  stats (): BoundedMapStats {
    return this.#keys.stats()
  }
}

export interface VariantReport {
  /** '' for a URL that does not vary. */
  variant: string
  /** The request header (and `cookie:<name>`) values that select it. */
  values: Readonly<Record<string, string | null>>
  status: number
  /** Seconds, RFC 9111 §4.2.3 current_age. */
  age: number
  /** Seconds the response is fresh for in all (after route defaults and caps). */
  freshnessLifetime: number
  /** Seconds of freshness left; negative when stale. */
  ttl: number
  /** What a plain request would get now: the decision's kind and detail. */
  state: 'fresh' | 'stale' | 'revalidate'
  detail: string | undefined
  /** Seconds left in each RFC 5861 window (the whole window while still fresh), and the window. */
  staleWhileRevalidate: { window: number, remaining: number }
  staleIfError: { window: number, remaining: number }
  tags: string[]
  /** Set by a soft purge (ISO time). */
  invalidatedAt: string | undefined
  storedAt: string
  bodyBytes: number
}

export type Explanation =
  | { url: string, route: null, message: string }
  | {
    url: string
    route: { name: string, host: string | null, path: string, origin: string, enabled: boolean }
    key: string | null
    /** The Vary names recorded for the URL; null when nothing is stored. */
    vary: string[] | null
    variants: VariantReport[]
    lastDecision: (Omit<StorageDecision, 'at'> & { at: string }) | null
    message: string
    /** The store failed: what is shown may be incomplete. */
    storeError?: string
  }

export interface ExplainDeps {
  routes: RouteMatcher
  store: Store
  decisions: DecisionLog
  now: number
  /** Redacts query secrets in what is shown (the URL, the key, the message); the lookup uses the real key. */
  redact?: (url: string) => string
}

const seconds = (ms: number): number => Math.round(ms) / 1000

function report (entry: CacheEntry, variant: VariantId, now: number): VariantReport {
  const d = decide(entry, new Map(), now)
  const staleFor = Math.max(0, -d.ttl)
  const window = (ms: number): { window: number, remaining: number } => ({ window: seconds(ms), remaining: seconds(Math.max(0, ms - staleFor)) })
  return {
    variant,
    values: entry.vary,
    status: entry.status,
    age: seconds(d.age),
    freshnessLifetime: seconds(entry.freshness),
    ttl: seconds(d.ttl),
    state: d.kind,
    detail: d.kind === 'fresh' ? undefined : d.detail,
    staleWhileRevalidate: window(entry.staleWhileRevalidate),
    staleIfError: window(entry.staleIfError),
    tags: [...entry.tags],
    invalidatedAt: entry.invalidatedAt > 0 ? new Date(entry.invalidatedAt).toISOString() : undefined,
    storedAt: new Date(entry.responseTime).toISOString(),
    bodyBytes: entry.body.length
  }
}

/**
 * Explains `url` (absolute http(s)). `headers` stand for the request headers of the variant
 * to look up (the explain request's `header=name:value` parameters).
 */
export async function explain (deps: ExplainDeps, url: string, headers: IncomingHeaders): Promise<Explanation> {
  const shown = await explainRaw(deps, url, headers)
  const redact = deps.redact
  if (redact === undefined) return shown
  const message = shown.message.replace(/"([^"]*)"/g, (_quoted, inner: string) => `"${redact(inner)}"`)
  if (shown.route === null) return { ...shown, url: redact(shown.url), message }
  return { ...shown, url: redact(shown.url), key: shown.key === null ? null : redact(shown.key), message }
}

async function explainRaw (deps: ExplainDeps, url: string, headers: IncomingHeaders): Promise<Explanation> {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)([^#]*)/.exec(url)
  const host = m?.[1] ?? ''
  const target = m?.[2] === undefined || m[2] === '' || m[2].startsWith('?') ? `/${m?.[2] ?? ''}` : m[2]
  // Routed on the normalized path, as a request is (http/request-fields.ts resolveRequest).
  const plain = m === null ? undefined : normalizeAbsoluteUrl(url)
  const route = m === null ? undefined : deps.routes.match(host, plain?.ok === true ? plain.path : target)
  if (route === undefined) {
    return {
      url,
      route: null,
      message: m === null
        ? 'Not an absolute http(s) URL: give the URL as a client would send it, e.g. https://api.example.com/products/1'
        : `No route serves host "${host}" and path "${target}": a request for it is answered 404 (CG_ERR_NO_ROUTE)`
    }
  }
  const routeInfo = { name: route.name, host: route.host ?? null, path: route.path, origin: route.origin, enabled: route.enabled }
  const normalized = normalizeAbsoluteUrl(url, globMatcher(route.key.ignoreQuery))
  if (!normalized.ok) {
    return { url, route: routeInfo, key: null, vary: null, variants: [], lastDecision: null, message: `The URL is malformed (${normalized.reason}): a request for it is answered 400` }
  }
  const key = normalized.key
  const last = deps.decisions.last(key)
  const lastDecision = last === undefined ? null : { ...last, at: new Date(last.at).toISOString() }
  const base = { url, route: routeInfo, key, lastDecision }
  if (!route.enabled) {
    return { ...base, vary: null, variants: [], message: 'Caching is disabled on this route (enabled: false): every request passes through to the origin' }
  }

  const variants: VariantReport[] = []
  let vary: string[] | null = null
  try {
    const lookup = await deps.store.lookup(key)
    vary = lookup.vary === null ? null : [...lookup.vary]
    if (lookup.entry !== null && lookup.entry.url === key) variants.push(report(lookup.entry, NO_VARIANT, deps.now))
    if (lookup.vary !== null) {
      const ids = new Set(deps.decisions.variants(key).keys())
      const spec = mergeSpec(route.key.headers, route.key.cookies, lookup.vary)
      ids.add(variantId(variantValues(spec, headers)))
      ids.delete(NO_VARIANT)
      for (const id of ids) {
        const entry = await deps.store.getVariant(key, id)
        if (entry !== null && entry.url === key) variants.push(report(entry, id, deps.now))
      }
    }
  } catch (err) {
    return { ...base, vary, variants, message: 'The store could not be read', storeError: err instanceof Error ? err.message : String(err) }
  }
  return { ...base, vary, variants, message: summary(variants, last) }
}

function summary (variants: VariantReport[], last: StorageDecision | undefined): string {
  const stored = variants.length === 0
    ? 'Nothing is stored for this key'
    : `${variants.length} variant${variants.length === 1 ? ' is' : 's are'} stored`
  if (last === undefined) return `${stored}; this process has not fetched it from the origin recently`
  if (last.stored) return `${stored}; the last origin response (${last.status}) was stored`
  return `${stored}; the last origin response (${last.status}) was not stored: ${last.detail ?? 'unknown'}`
}
