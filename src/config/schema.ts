/**
 * The routes.yaml schema: one TypeBox description gives the validator (unknown keys are
 * errors, every leaf has a rule and a phrase for its error message), the type of a validated
 * file (`FileConfig`) and the defaults (`withDefault`, read back by `fill`).
 *
 * Leaves with rules beyond a JSON type (durations, sizes, ports, URLs, header names, ...) are
 * registered TypeBox kinds whose check returns the whole problem text ("expected …, got …"),
 * so the validator and the message cannot drift apart. Numbers and booleans also accept their
 * string spelling ("8080", "true"), because `${VAR}` expansion always yields strings.
 *
 * The resolved type the gateway consumes is config/types.ts; load.ts converts one to the other.
 */
import { isIP, isIPv6 } from 'node:net'
import { Kind, Type, TypeRegistry } from '@sinclair/typebox'
import type { SchemaOptions, Static, TObject, TOptional, TProperties, TSchema, TUnsafe } from '@sinclair/typebox'
import { normalizePath } from '../cache/key.ts'
import { TAG_HEADERS, type TagHeader } from '../cache/tag-header.ts'
import { ADDRESS_RANGE_EXAMPLE, parseAddressRange } from './address-range.ts'
import { parseDuration, parseSize } from './duration.ts'

// ---------------------------------------------------------------------------------------------
// Problem phrasing

/** A value as it appears in a message: strings quoted (URL credentials masked), collections named. */
export function show (value: unknown): string {
  if (typeof value === 'string') {
    const masked = value.replace(/(\/\/[^/?#@:]*:)[^/?#@]*@/, '$1***@')
    return JSON.stringify(masked.length > 80 ? `${masked.slice(0, 77)}...` : masked)
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value === null || value === undefined) return 'an empty value'
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list'
  return 'a mapping'
}

function expected (phrase: string, value: unknown): string {
  return `expected ${phrase}, got ${show(value)}`
}

// ---------------------------------------------------------------------------------------------
// Leaves

/** Returns the problem with a value ("expected …, got …"), or undefined when it is valid. */
export type LeafCheck = (value: unknown) => string | undefined

const leafChecks = new Map<string, LeafCheck>()

/**
 * Registers a leaf kind and returns its schema factory. `T` is the type of an accepted raw
 * value; load.ts converts it (durations to ms, sizes to bytes, ...).
 */
function leaf<T> (name: string, check: LeafCheck): (options?: SchemaOptions) => TUnsafe<T> {
  const kind = `Cachegate.${name}`
  leafChecks.set(kind, check)
  TypeRegistry.Set(kind, (_schema, value) => check(value) === undefined)
  return (options) => Type.Unsafe<T>({ ...options, [Kind]: kind })
}

/** The problem a leaf schema finds with a value, or undefined (also for non-leaf schemas). */
export function leafProblem (schema: TSchema, value: unknown): string | undefined {
  return leafChecks.get(schema[Kind])?.(value)
}

/** Whole numbers written as a number or as digits ("8080"). */
function wholeNumber (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return Number(value)
  return undefined
}

/** Numbers written as a number or as decimal digits ("12.5"). */
function decimalNumber (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  if (typeof value === 'string' && /^\d{1,15}(?:\.\d{1,15})?$/.test(value)) return Number(value)
  return undefined
}

export function toWholeNumber (value: number | string): number {
  return wholeNumber(value) ?? Number.NaN
}

export function toDecimalNumber (value: number | string): number {
  return decimalNumber(value) ?? Number.NaN
}

export function toFlag (value: boolean | string): boolean {
  return value === true || value === 'true'
}

/** Longest timer: setTimeout fires anything above 2^31-1 ms (24.8 days) at once. */
const MAX_WAIT_MS = 24 * 86_400_000

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const HOST_LABELS = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i

function ofType (phrase: string, test: (value: string) => boolean): LeafCheck {
  return (value) => typeof value === 'string' && test(value) ? undefined : expected(phrase, value)
}

export const Duration = leaf<number | string>('Duration', (value) =>
  parseDuration(value) === undefined ? expected('a duration such as "10m"', value) : undefined)

/** A timer that must fire: more than 0, at most 24d. */
export const Timeout = leaf<number | string>('Timeout', (value) => {
  const ms = parseDuration(value)
  return ms === undefined || ms === 0 || ms > MAX_WAIT_MS ? expected('a duration from 1ms to 24d such as "5s"', value) : undefined
})

/** A wait that may be 0, at most 24d. */
export const Wait = leaf<number | string>('Wait', (value) => {
  const ms = parseDuration(value)
  return ms === undefined || ms > MAX_WAIT_MS ? expected('a duration of at most 24d such as "5s"', value) : undefined
})

export const Size = leaf<number | string>('Size', (value) =>
  parseSize(value) === undefined ? expected('a size such as "8MiB"', value) : undefined)

export const PositiveSize = leaf<number | string>('PositiveSize', (value) => {
  const bytes = parseSize(value)
  return bytes === undefined || bytes === 0 ? expected('a size of at least 1 byte such as "16KiB"', value) : undefined
})

export const Port = leaf<number | string>('Port', (value) => {
  const port = wholeNumber(value)
  return port === undefined || port < 0 || port > 65535 ? expected('a port number 0-65535', value) : undefined
})

export const Count = leaf<number | string>('Count', (value) => {
  const count = wholeNumber(value)
  return count === undefined || count < 1 ? expected('a whole number of at least 1', value) : undefined
})

export const Percent = leaf<number | string>('Percent', (value) => {
  const percent = decimalNumber(value)
  return percent === undefined || percent < 0 || percent > 50 ? expected('a percentage from 0 to 50', value) : undefined
})

export const Flag = leaf<boolean | string>('Flag', (value) =>
  value === true || value === false || value === 'true' || value === 'false' ? undefined : expected('true or false', value))

/** Any string; '' counts as unset where the loader says so (tokens, secrets). */
export const Text = leaf<string>('Text', ofType('a string', () => true))

export const BindHost = leaf<string>('BindHost', ofType('a host name or IP address such as "0.0.0.0"',
  (value) => isIP(value) !== 0 || HOST_LABELS.test(value)))

export const RouteHost = leaf<string>('RouteHost', (value) => {
  if (value === '*') return expected('a host name (leave host out to match every host)', value)
  const ok = typeof value === 'string' &&
    (isIPv6(value) || (value.startsWith('[') && value.endsWith(']') && isIPv6(value.slice(1, -1))) || HOST_LABELS.test(value))
  return ok ? undefined : expected('a host name without port such as "api.example.com"', value)
})

export const RoutePath = leaf<string>('RoutePath', (value) => {
  if (typeof value !== 'string' || !/^\/[^\s?#]*$/.test(value)) return expected('a path starting with "/" without query or fragment', value)
  // Requests are routed on their normalized path (cache/key.ts): a prefix in another spelling
  // (dot segments, lower-case or needless escapes) would never match what it seems to.
  const normal = normalizePath(value)
  if (normal === null) return expected('a path with valid percent-encoding', value)
  return normal === value ? undefined : expected(`a normalized path ("${normal}")`, value)
})

export const RouteName = leaf<string>('RouteName', ofType('a name of letters, digits, "_" and "-"',
  (value) => /^[A-Za-z0-9_-]+$/.test(value)))

export const OriginUrl = leaf<string>('OriginUrl', (value) => {
  if (typeof value !== 'string' || !URL.canParse(value)) return expected('an http(s) URL', value)
  const url = new URL(value)
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') return expected('an http(s) URL', value)
  // "http://x/?" parses to an empty search, so look at the text too.
  if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) {
    return expected('an http(s) URL without query or fragment', value)
  }
  if (url.username !== '' || url.password !== '') return expected('an http(s) URL without credentials', value)
  return undefined
})

/** '' counts as unset, so `url: "${REDIS_URL:-}"` can be left empty. */
export const RedisUrl = leaf<string>('RedisUrl', (value) => {
  if (value === '') return undefined
  const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined
  return url !== undefined && (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== ''
    ? undefined
    : expected('a redis:// or rediss:// URL', value)
})

export const HostPort = leaf<string>('HostPort', ofType('host:port such as "127.0.0.1:7000"', (value) => {
  const match = /^(.+):(\d{1,5})$/.exec(value)
  if (match === null) return false
  const [, host = '', port = ''] = match
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  return Number(port) <= 65535 && (isIP(bare) !== 0 || HOST_LABELS.test(bare))
}))

export const IpAddress = leaf<string>('IpAddress', ofType('an IP address such as "127.0.0.1"', (value) => isIP(value) !== 0))

/** An address or CIDR range (trustedProxies); the message says which part is wrong. */
export const AddressRange = leaf<string>('AddressRange', (value) => {
  if (typeof value !== 'string') return expected(ADDRESS_RANGE_EXAMPLE, value)
  const range = parseAddressRange(value)
  return 'expected' in range ? expected(range.expected, value) : undefined
})

export const HeaderName = leaf<string>('HeaderName', ofType('a header name such as "x-tenant"', (value) => TOKEN.test(value)))

export const CookieName = leaf<string>('CookieName', ofType('a cookie name such as "currency"', (value) => TOKEN.test(value)))

export const QueryGlob = leaf<string>('QueryGlob', ofType('a query parameter name or glob such as "utm_*"',
  (value) => value !== '' && !/[\s&=#]/.test(value)))

export const ContentTypePrefix = leaf<string>('ContentTypePrefix', ofType('a content type or prefix such as "application/json"',
  (value) => /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\/[!#$%&'*+.^_`|~0-9A-Za-z-]*)?$/.test(value)))

/** A header value we emit: visible ASCII, spaces and tabs only, so nothing can be injected. */
export const HeaderValue = leaf<string>('HeaderValue', ofType('a header value such as "public, max-age=60"',
  (value) => /^[\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?$/.test(value)))

// ---------------------------------------------------------------------------------------------
// Defaults

declare const defaultBrand: unique symbol

/** An optional property with a default; the brand lets `fill` type the filled value. */
export type WithDefault<S extends TSchema> = TOptional<S> & { readonly [defaultBrand]: Static<S> }

export function withDefault<S extends TSchema> (schema: S, value: Static<S>): WithDefault<S> {
  return Type.Optional({ ...schema, default: value }) as unknown as WithDefault<S>
}

/** An object's properties with defaults filled in: undefined only where there is no default. */
export type Filled<P extends TProperties> = {
  -readonly [K in keyof P]: P[K] extends { readonly [defaultBrand]: infer D }
    ? D
    : P[K] extends TOptional<infer S> ? Static<S> | undefined : Static<P[K]>
}

/** A validated section (or undefined when the file left it out) with every default applied. */
export function fill<P extends TProperties> (schema: TObject<P>, value: Static<TObject<P>> | undefined): Filled<P> {
  const given: Partial<Record<string, unknown>> = value ?? {}
  const filled: Record<string, unknown> = {}
  for (const [key, property] of Object.entries(schema.properties)) {
    const fallback: unknown = property.default
    filled[key] = given[key] ?? structuredClone(fallback)
  }
  return filled as Filled<P>
}

// ---------------------------------------------------------------------------------------------
// The file

const closed = { additionalProperties: false } as const

export const ListenSchema = Type.Object({
  host: withDefault(BindHost(), '0.0.0.0'),
  port: withDefault(Port(), 8080)
}, closed)

export const AdminSchema = Type.Object({
  host: withDefault(BindHost(), '127.0.0.1'),
  port: withDefault(Port(), 9091),
  token: Type.Optional(Text()),
  webhookSecret: Type.Optional(Text()),
  webhookTolerance: withDefault(Timeout(), '5m')
}, closed)

export const BreakerSchema = Type.Object({
  failures: withDefault(Count(), 5),
  cooldown: withDefault(Timeout(), '2s')
}, closed)

export const RedisSchema = Type.Object({
  url: Type.Optional(RedisUrl()),
  cluster: withDefault(Type.Array(HostPort(), { expected: 'a list of host:port seeds' }), []),
  keyPrefix: withDefault(Text(), 'cg:'),
  commandTimeout: withDefault(Timeout(), '50ms'),
  writeTimeout: withDefault(Timeout(), '500ms'),
  breaker: Type.Optional(BreakerSchema)
}, closed)

export const CacheSchema = Type.Object({
  memoryMaxBytes: withDefault(Size(), '256MiB'),
  maxObjectSize: withDefault(Size(), '8MiB'),
  maxVariants: withDefault(Count(), 32),
  l1MaxBytes: withDefault(Size(), '32MiB'),
  l1MaxTtl: withDefault(Duration(), '5s'),
  coalesceWait: withDefault(Wait(), '5s'),
  hitForMiss: withDefault(Duration(), '10s')
}, closed)

export const LimitsSchema = Type.Object({
  maxUrlLength: withDefault(Count(), 8192),
  maxHeaderBytes: withDefault(PositiveSize(), '16KiB'),
  maxBodyBytes: withDefault(PositiveSize(), '10MiB'),
  requestBodyTimeout: withDefault(Timeout(), '10s')
}, closed)

export const PurgeMethodSchema = Type.Object({
  enabled: withDefault(Flag(), false),
  allow: withDefault(Type.Array(IpAddress(), { expected: 'a list of IP addresses' }), ['127.0.0.1', '::1'])
}, closed)

export const KeySchema = Type.Object({
  ignoreQuery: withDefault(Type.Array(QueryGlob(), { expected: 'a list of query parameter names' }), []),
  headers: withDefault(Type.Array(HeaderName(), { expected: 'a list of header names' }), []),
  cookies: withDefault(Type.Array(CookieName(), { expected: 'a list of cookie names' }), [])
}, closed)

export const TimeoutsSchema = Type.Object({
  connect: withDefault(Timeout(), '5s'),
  headers: withDefault(Timeout(), '30s'),
  body: withDefault(Timeout(), '30s'),
  total: Type.Optional(Timeout())
}, closed)

export const RouteSchema = Type.Object({
  name: Type.Optional(RouteName()),
  host: Type.Optional(RouteHost()),
  path: withDefault(RoutePath(), '/'),
  origin: OriginUrl(),
  enabled: withDefault(Flag(), true),
  defaultTtl: Type.Optional(Duration()),
  maxTtl: Type.Optional(Duration()),
  key: Type.Optional(KeySchema),
  staleWhileRevalidate: withDefault(Duration(), 0),
  staleIfError: withDefault(Duration(), 0),
  keep: withDefault(Duration(), '1h'),
  downstreamCacheControl: Type.Optional(HeaderValue()),
  keepTagHeaders: withDefault(Flag(), false),
  tagHeader: Type.Optional(Type.Unsafe<TagHeader>(Type.Union(TAG_HEADERS.map((n) => Type.Literal(n)), { expected: `one of ${TAG_HEADERS.join(', ')}` }))),
  storeContentTypes: withDefault(Type.Array(ContentTypePrefix(), { expected: 'a list of content types' }), []),
  storePostResponses: withDefault(Flag(), true),
  timeouts: Type.Optional(TimeoutsSchema),
  maxConnections: withDefault(Count(), 128),
  l1: withDefault(Flag(), false),
  ttlJitter: withDefault(Percent(), 0),
  refreshAhead: withDefault(Flag(), false),
  implicitCachingWithCookies: withDefault(Flag(), false),
  ignoreClientNoCache: withDefault(Flag(), false),
  languageSelection: withDefault(Flag(), true)
}, closed)

/** The default `redactQueryParams`: query parameters named like credentials (src/observability/redact.ts). */
export const DEFAULT_REDACT_QUERY = ['token', 'access_token', 'api_key', 'apikey', 'key', 'signature', 'sig', 'password', 'secret', 'auth'] as const

/** Provider names for `cdn[].provider` (src/invalidation/cdn/). */
export const CDN_PROVIDERS = ['cloudflare', 'fastly', 'akamai', 'cloudfront', 'webhook'] as const
/** CMS kinds for `webhooks[].kind` (src/invalidation/webhooks/). */
export const WEBHOOK_KINDS = ['shopify', 'contentful', 'sanity', 'storyblok', 'strapi', 'generic'] as const

const oneOf = <T extends string>(names: readonly T[]): TUnsafe<T> =>
  Type.Unsafe<T>(Type.Union(names.map((n) => Type.Literal(n)), { expected: `one of ${names.join(', ')}` }))

/**
 * One CDN purge forward. Provider-specific keys are all optional here; which ones a provider
 * needs (and refuses) is checked in config/integrations.ts, so the message names the provider.
 */
export const CdnSchema = Type.Object({
  provider: oneOf(CDN_PROVIDERS),
  name: Type.Optional(RouteName()),
  apiBase: Type.Optional(OriginUrl()),
  token: Type.Optional(Text()),
  zone: Type.Optional(Text()),
  service: Type.Optional(Text()),
  distribution: Type.Optional(Text()),
  accessKeyId: Type.Optional(Text()),
  secretAccessKey: Type.Optional(Text()),
  sessionToken: Type.Optional(Text()),
  clientToken: Type.Optional(Text()),
  clientSecret: Type.Optional(Text()),
  accessToken: Type.Optional(Text()),
  network: Type.Optional(oneOf(['production', 'staging'] as const)),
  url: Type.Optional(OriginUrl()),
  secret: Type.Optional(Text()),
  maxAttempts: withDefault(Count(), 8),
  timeout: withDefault(Timeout(), '10s')
}, closed)

export const WebhookPurgeSchema = Type.Object({
  tags: withDefault(Type.Array(Text(), { expected: 'a list of templates such as "product:{id}"' }), []),
  urls: withDefault(Type.Array(Text(), { expected: 'a list of URL templates' }), []),
  prefixes: withDefault(Type.Array(Text(), { expected: 'a list of URL prefix templates' }), []),
  mode: withDefault(oneOf(['soft', 'hard', 'revalidate'] as const), 'hard')
}, closed)

export const WebhookSchema = Type.Object({
  name: RouteName(),
  kind: oneOf(WEBHOOK_KINDS),
  secret: Text(),
  /** strapi: the header carrying the token; generic: the header carrying the signature. */
  header: Type.Optional(HeaderName()),
  /** How old a signed timestamp may be (schemes that sign one: sanity). */
  tolerance: withDefault(Duration(), '5m'),
  /** Payload fields for templates: name -> path such as "$.data.id" (generic needs it; others may add fields). */
  fields: Type.Optional(Type.Record(Type.String(), Text(), { expected: 'a mapping of field names to paths such as "$.data.id"' })),
  purge: WebhookPurgeSchema
}, closed)

export const FileSchema = Type.Object({
  listen: Type.Optional(ListenSchema),
  admin: Type.Optional(AdminSchema),
  redis: Type.Optional(RedisSchema),
  cache: Type.Optional(CacheSchema),
  limits: Type.Optional(LimitsSchema),
  purgeMethod: Type.Optional(PurgeMethodSchema),
  shutdownTimeout: withDefault(Timeout(), '10s'),
  trustedProxies: withDefault(Type.Array(AddressRange(), { expected: 'a list of IP addresses or CIDR ranges' }), []),
  stripHeaders: withDefault(Type.Array(HeaderName(), { expected: 'a list of header names' }), []),
  /** Query parameters whose values log lines and /explain show as REDACTED (case-insensitive, globs). */
  redactQueryParams: withDefault(Type.Array(QueryGlob(), { expected: 'a list of query parameter names' }), [...DEFAULT_REDACT_QUERY]),
  cdn: Type.Optional(Type.Array(CdnSchema, { expected: 'a list of CDN forwards' })),
  webhooks: Type.Optional(Type.Array(WebhookSchema, { expected: 'a list of CMS webhooks' })),
  routes: Type.Array(RouteSchema, { minItems: 1, expected: 'a non-empty list of routes' })
}, closed)

/** A routes.yaml that passed validation, as written (defaults not yet applied). */
export type FileConfig = Static<typeof FileSchema>
export type RouteFile = Static<typeof RouteSchema>
export type RedisFile = Static<typeof RedisSchema>

/** Every object schema, for tests that check each default against its own rule. */
export const sectionSchemas = {
  listen: ListenSchema,
  admin: AdminSchema,
  redis: RedisSchema,
  breaker: BreakerSchema,
  cache: CacheSchema,
  limits: LimitsSchema,
  purgeMethod: PurgeMethodSchema,
  key: KeySchema,
  timeouts: TimeoutsSchema,
  route: RouteSchema,
  cdn: CdnSchema,
  webhook: WebhookSchema,
  webhookPurge: WebhookPurgeSchema,
  file: FileSchema
} as const
