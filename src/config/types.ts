/**
 * The resolved, validated configuration as the rest of the gateway sees it: durations in
 * milliseconds, sizes in bytes, defaults applied, deeply frozen. Produced only by
 * config/load.ts from routes.yaml (schema in config/schema.ts).
 */
import type { TagHeader } from '../cache/tag-header.ts'

export interface KeyOptions {
  /** Query parameter names (globs such as `utm_*`) dropped from the key and from the forwarded request. */
  ignoreQuery: readonly string[]
  /** Request header names (lower-case) added to the key. */
  headers: readonly string[]
  /** Cookie names added to the key. */
  cookies: readonly string[]
}

export interface OriginTimeouts {
  connect: number
  /** Until the response headers have arrived. */
  headers: number
  /** Longest gap between body chunks (an idle timeout: a body that keeps trickling never trips it). */
  body: number
  /** Deadline for the whole response, headers and body, from the request (ms); absent: none. */
  total?: number
}

export interface RouteConfig {
  /** Stable name for logs and metrics: `name` from the file, else `route-<index>`. */
  name: string
  /** Lower-case host name to match (port ignored); undefined matches every host. */
  host: string | undefined
  /** Path prefix to match, starting with '/'. */
  path: string
  /** Origin base URL, e.g. http://127.0.0.1:3000 (no trailing slash). */
  origin: string
  /** false: pass everything through uncached. */
  enabled: boolean
  /** Freshness used only when the origin gave no explicit freshness (ms); undefined: none. */
  defaultTtl: number | undefined
  /** Cap on every freshness lifetime (ms); undefined: no cap. */
  maxTtl: number | undefined
  key: KeyOptions
  /** RFC 5861 windows (ms) used where the origin sent none. */
  staleWhileRevalidate: number
  staleIfError: number
  /**
   * Extra time (ms) an entry that has a validator (ETag or Last-Modified) is kept after its
   * stale windows, so it can still be revalidated with a conditional request (Varnish's keep).
   */
  keep: number
  /** Cache-Control emitted downstream instead of the origin's; undefined: origin's unchanged. */
  downstreamCacheControl: string | undefined
  /** Keep Surrogate-Key / Cache-Tag headers on responses sent downstream. */
  keepTagHeaders: boolean
  /**
   * Emit the entry's tags downstream in this CDN header (Fastly `surrogate-key`, Cloudflare
   * `cache-tag`, Akamai `edge-cache-tag`), in that CDN's format; absent: none.
   */
  tagHeader?: TagHeader
  /** Content-Type prefixes the route may store (web cache deception guard); empty: any. */
  storeContentTypes: readonly string[]
  /**
   * Keep a POST response that names its own URL in Content-Location and has explicit freshness
   * as that URL's GET response (RFC 9110 §9.3.3, src/cache/post-as-get.ts).
   */
  storePostResponses: boolean
  timeouts: OriginTimeouts
  /** Most concurrent connections to this origin. */
  maxConnections: number
  /** Per-route in-memory L1 in front of a shared store. */
  l1: boolean
  /** TTL jitter in percent (0..50). */
  ttlJitter: number
  /** Probabilistic early refresh of hot keys shortly before expiry. */
  refreshAhead: boolean
  /**
   * Opt-out (risky): responses to requests carrying cookies the route does not key on may get
   * the route's default TTL, heuristic freshness and stale windows. Off: only explicit freshness.
   */
  implicitCachingWithCookies: boolean
  /** Serve from cache despite the client's no-cache, Pragma: no-cache and max-age=0, as CDNs do. */
  ignoreClientNoCache: boolean
  /**
   * A request whose Accept-Language variant is missing may be answered by the response stored
   * with `Content-Language` equal to its single first language (src/cache/language.ts).
   */
  languageSelection: boolean
}

export interface RedisConfig {
  /** redis:// URL for a standalone Redis; undefined with cluster set. */
  url: string | undefined
  /** host:port seeds of a Redis Cluster. */
  cluster: readonly string[]
  keyPrefix: string
  /** Timeout for one store command (ms). */
  commandTimeout: number
  /** Timeout for one store write (ms), on a connection of its own. */
  writeTimeout: number
  /** Circuit breaker in front of Redis. */
  breaker: BreakerConfig
}

export interface BreakerConfig {
  /** Consecutive failed commands that open the breaker. */
  failures: number
  /** How long it stays open (store bypassed) before one probe command is let through (ms). */
  cooldown: number
}

export interface CacheConfig {
  /** Memory store size bound (bytes). */
  memoryMaxBytes: number
  /** Bodies larger than this stream through unstored (bytes). */
  maxObjectSize: number
  /** Most variants per URL. */
  maxVariants: number
  /** L1 (per-instance memory in front of Redis) size and max TTL. */
  l1MaxBytes: number
  l1MaxTtl: number
  /** Longest a coalesced waiter waits for another instance's fetch (ms). */
  coalesceWait: number
  /** How long a key found uncacheable is remembered (hit-for-miss), ms. */
  hitForMiss: number
}

export interface AdminConfig {
  host: string
  port: number
  /** Bearer token; undefined: purge endpoints answer 503. */
  token: string | undefined
  /** HMAC-SHA256 secret for signed webhooks; undefined: signatures not accepted. */
  webhookSecret: string | undefined
  /** How far (ms) a signed purge's X-Cachegate-Timestamp may be from now; a signature is refused if seen again within it. */
  webhookTolerance: number
}

export interface LimitsConfig {
  maxUrlLength: number
  maxHeaderBytes: number
  maxBodyBytes: number
  /** Longest pause (ms) between chunks of a client's request body before the request is answered 408 and its origin request aborted. */
  requestBodyTimeout: number
}

export interface PurgeMethodConfig {
  /** Allow the HTTP PURGE method on the public listener. */
  enabled: boolean
  /** Client addresses allowed to send PURGE. */
  allow: readonly string[]
}

/** A CDN that purges are forwarded to after they succeed at the gateway (src/invalidation/cdn/). */
export type CdnConfig = CdnCommon & (
  | { provider: 'cloudflare', zone: string, token: string }
  | { provider: 'fastly', service: string, token: string }
  | { provider: 'akamai', clientToken: string, clientSecret: string, accessToken: string, network: 'production' | 'staging' }
  | { provider: 'cloudfront', distribution: string, accessKeyId: string, secretAccessKey: string, sessionToken: string | undefined }
  | { provider: 'webhook', secret: string | undefined }
)

export interface CdnCommon {
  /** Stable name for the purge response, logs and the outbox: `name`, else the provider (`-<index>` when repeated). */
  name: string
  /** API base URL (no trailing slash); the provider's public API unless overridden; the target URL for `webhook`. */
  apiBase: string
  /** Attempts per batch before it is reported failed. */
  maxAttempts: number
  /** Timeout of one API request (ms). */
  timeout: number
}

export type WebhookKind = 'shopify' | 'contentful' | 'sanity' | 'storyblok' | 'strapi' | 'generic'

/** A CMS webhook endpoint, POST /webhooks/<name> on the admin listener (src/invalidation/webhooks/). */
export interface WebhookConfig {
  name: string
  kind: WebhookKind
  secret: string
  /** Lower-case header name: strapi's token header, generic's signature header. */
  header: string | undefined
  /** Oldest signed timestamp accepted (ms), for schemes that sign one. */
  tolerance: number
  /** Extra payload fields for templates: name -> path such as `$.data.id`. */
  fields: Readonly<Record<string, string>>
  purge: {
    tags: readonly string[]
    urls: readonly string[]
    prefixes: readonly string[]
    mode: 'soft' | 'hard' | 'revalidate'
  }
}

export interface GatewayConfig {
  /** Path of the file this came from, for messages. */
  file: string
  listen: { host: string, port: number }
  admin: AdminConfig
  /** undefined: memory store. */
  redis: RedisConfig | undefined
  cache: CacheConfig
  limits: LimitsConfig
  purgeMethod: PurgeMethodConfig
  shutdownTimeout: number
  /**
   * Peers (addresses and CIDR ranges, as written) whose X-Forwarded-For and Forwarded are kept
   * and extended; from any other peer they are replaced. Empty: no peer is trusted.
   */
  trustedProxies: readonly string[]
  /** Extra request fields (lower-case) never forwarded unless a route keys on them. */
  stripHeaders: readonly string[]
  /** Query parameter names (lower-case, `*` globs) whose values log lines and /explain redact. */
  redactQueryParams: readonly string[]
  routes: readonly RouteConfig[]
  /** CDN purge forwards; absent when none is configured. */
  cdn?: readonly CdnConfig[]
  /** CMS webhook endpoints; absent when none is configured. */
  webhooks?: readonly WebhookConfig[]
}
