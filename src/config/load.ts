/**
 * Loads routes.yaml into the frozen GatewayConfig the rest of the gateway consumes.
 *
 * 1. Parse the YAML keeping node positions (syntax errors stop here).
 * 2. Expand `${VAR}` / `${VAR:-default}` in string scalars from the env given, not process.env.
 * 3. Validate against the TypeBox schema (config/schema.ts): unknown keys, types, leaf rules.
 * 4. Check what spans several values: redis url xor cluster, route names, duplicate and
 *    unreachable routes.
 * 5. Apply defaults, convert durations to ms and sizes to bytes, freeze.
 *
 * Every problem found is reported at once, each as `file:line:col: path: what is wrong`, in a
 * single ConfigError; nothing here prints or exits.
 */
import { readFile } from 'node:fs/promises'
import { KindGuard } from '@sinclair/typebox'
import type { TSchema } from '@sinclair/typebox'
import { Value, ValueErrorType } from '@sinclair/typebox/value'
import { LineCounter, isAlias, isMap, isNode, isScalar, isSeq, parseDocument } from 'yaml'
import type { Document } from 'yaml'
import { GatewayError } from '../errors.ts'
import { parseDuration, parseSize } from './duration.ts'
import { normalizeRouteHost, pathMatches } from './routes.ts'
import { buildCdn, buildWebhooks, integrationProblems } from './integrations.ts'
import {
  AdminSchema, BindHost, BreakerSchema, CacheSchema, CdnSchema, FileSchema, KeySchema, LimitsSchema, ListenSchema, Port, PurgeMethodSchema,
  RedisSchema, RedisUrl, RouteSchema, TimeoutsSchema, WebhookSchema,
  fill, leafProblem, show, toDecimalNumber, toFlag, toWholeNumber
} from './schema.ts'
import type { FileConfig, RedisFile, RouteFile } from './schema.ts'
import type { GatewayConfig, RedisConfig, RouteConfig } from './types.ts'

/** Where `${VAR}` values come from: process.env in main.ts, a plain object in tests. */
export type Env = NodeJS.ProcessEnv | Readonly<Record<string, string | undefined>>

export class ConfigError extends GatewayError {
  /** Each problem on its own, `file:line:col: path: what is wrong`; the message joins them with newlines. */
  readonly problems: string[]

  constructor (problems: string[], code: 'CG_ERR_CONFIG_INVALID' | 'CG_ERR_CONFIG_READ' = 'CG_ERR_CONFIG_INVALID') {
    super(code, problems.join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Reads and loads a routes.yaml. `file` is used as given in messages and in `config.file`. */
export async function loadConfig (file: string, env: Env): Promise<GatewayConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new ConfigError([`${file}: cannot read file: ${error instanceof Error ? error.message : String(error)}`], 'CG_ERR_CONFIG_READ')
  }
  return parseConfig(text, file, env)
}

/** Loads routes.yaml text; pure (the env is the only input besides the text). */
export function parseConfig (text: string, file: string, env: Env): GatewayConfig {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, keepSourceTokens: true, prettyErrors: false, uniqueKeys: true })
  const problems = new Problems(file, lineCounter)

  for (const error of doc.errors) problems.add(`YAML syntax error: ${error.message}`, [], error.pos[0])
  // Warnings (an unknown tag, say) would silently change a value: fail on them too.
  for (const warning of doc.warnings) problems.add(`YAML: ${warning.message}`, [], warning.pos[0])
  if (problems.size > 0) throw problems.error()

  const top = doc.contents
  if (top === null || (isScalar(top) && top.value === null)) {
    throw new ConfigError([`${file}: the file is empty; expected a mapping with at least a routes list`])
  }
  if (!isMap(top)) {
    problems.add(`expected a mapping at the top level, got ${show(doc.toJS())}`, [], top.range[0])
    throw problems.error()
  }

  const unexpanded = expandDocument(doc, env, problems)

  let raw: unknown
  try {
    raw = doc.toJS({ maxAliasCount: 100 })
  } catch (error) {
    problems.add(`YAML: ${error instanceof Error ? error.message : String(error)}`, [])
    throw problems.error()
  }

  schemaProblems(raw, doc, problems, unexpanded)
  crossProblems(raw, doc, problems)
  if (problems.size > 0 || !Value.Check(FileSchema, raw)) throw problems.error()
  return deepFreeze(build(file, raw))
}

/** Values from the command line or the environment that win over the file; '' and undefined are ignored. */
export interface ConfigOverrides {
  /** PORT */
  port?: string | undefined
  /** HOST */
  host?: string | undefined
  /** REDIS_URL: sets redis.url, creating the redis section with defaults and clearing cluster. */
  redisUrl?: string | undefined
  /** ADMIN_PORT */
  adminPort?: string | undefined
  /** CACHEGATE_ADMIN_TOKEN */
  adminToken?: string | undefined
}

/** A new frozen config with the overrides applied; throws ConfigError naming each bad variable. */
export function applyOverrides (config: GatewayConfig, overrides: ConfigOverrides): GatewayConfig {
  const problems: string[] = []
  const valid = (name: string, value: string | undefined, schema: TSchema): string | undefined => {
    if (value === undefined || value === '') return undefined
    const problem = leafProblem(schema, value)
    if (problem === undefined) return value
    problems.push(`${name}: ${problem}`)
    return undefined
  }
  const port = valid('PORT', overrides.port, Port())
  const host = valid('HOST', overrides.host, BindHost())
  const redisUrl = valid('REDIS_URL', overrides.redisUrl, RedisUrl())
  const adminPort = valid('ADMIN_PORT', overrides.adminPort, Port())
  const adminToken = overrides.adminToken === '' ? undefined : overrides.adminToken
  if (problems.length > 0) throw new ConfigError(problems)

  return deepFreeze({
    ...config,
    listen: {
      host: host ?? config.listen.host,
      port: port === undefined ? config.listen.port : toWholeNumber(port)
    },
    admin: {
      ...config.admin,
      port: adminPort === undefined ? config.admin.port : toWholeNumber(adminPort),
      token: adminToken ?? config.admin.token
    },
    redis: redisUrl === undefined
      ? config.redis
      : { ...(config.redis ?? buildRedis(fill(RedisSchema, undefined))), url: redisUrl, cluster: [] }
  })
}

// ---------------------------------------------------------------------------------------------
// Problems and where they are

type Segment = string | number
type Path = readonly Segment[]

/** `routes[2].maxTtl`; keys that are not plain words are quoted: `cache["max size"]`. */
function formatPath (path: Path): string {
  let text = ''
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) text += text === '' ? segment : `.${segment}`
    else text += `[${JSON.stringify(segment)}]`
  }
  return text
}

class Problems {
  readonly #file: string
  readonly #lines: LineCounter
  readonly #found: Array<{ offset: number, text: string }> = []

  constructor (file: string, lines: LineCounter) {
    this.#file = file
    this.#lines = lines
  }

  get size (): number {
    return this.#found.length
  }

  add (message: string, path: Path, offset?: number): void {
    const where = offset === undefined ? '' : `:${this.#position(offset)}`
    const subject = path.length === 0 ? '' : `${formatPath(path)}: `
    this.#found.push({ offset: offset ?? Number.MAX_SAFE_INTEGER, text: `${this.#file}${where}: ${subject}${message}` })
  }

  /** All problems in file order (Array#sort is stable, so same-place problems keep their order). */
  error (): ConfigError {
    return new ConfigError(this.#found.toSorted((a, b) => a.offset - b.offset).map((problem) => problem.text))
  }

  #position (offset: number): string {
    const { line, col } = this.#lines.linePos(offset)
    // LineCounter answers line 0 before the first newline it has seen.
    return line === 0 ? `1:${offset + 1}` : `${line}:${col}`
  }
}

function keyText (key: unknown): string {
  if (isScalar(key)) return String(key.value)
  return String(key)
}

function startOf (node: unknown): number | undefined {
  return isNode(node) ? node.range?.[0] : undefined
}

/**
 * The source offset of a path: the key itself for `target: 'key'`, else the value. Where the
 * path leaves the document (a missing key), the deepest node that exists.
 */
function locate (doc: Document, path: Path, target: 'key' | 'value'): number | undefined {
  let node: unknown = doc.contents
  let offset = startOf(node)
  for (const [index, segment] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc)
    if (isMap(node)) {
      const pair = node.items.find((item) => keyText(item.key) === String(segment))
      if (pair === undefined) return offset
      if (index === path.length - 1 && target === 'key') return startOf(pair.key) ?? offset
      offset = startOf(pair.value) ?? startOf(pair.key) ?? offset
      node = pair.value
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment]
      offset = startOf(node) ?? offset
    } else {
      return offset
    }
  }
  return offset
}

// ---------------------------------------------------------------------------------------------
// ${VAR} expansion

const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s

/**
 * `${VAR}`, `${VAR:-default}` (default when VAR is unset or empty, as in the shell) and `$${`
 * for a literal `${`. Returns the text or the problems.
 */
export function expandString (text: string, env: Env): { text: string, problems: string[] } {
  if (!text.includes('${')) return { text, problems: [] }
  const problems: string[] = []
  let out = ''
  let position = 0
  while (position < text.length) {
    const dollar = text.indexOf('$', position)
    if (dollar === -1) break
    out += text.slice(position, dollar)
    if (text.startsWith('$${', dollar)) {
      out += '${'
      position = dollar + 3
      continue
    }
    if (!text.startsWith('${', dollar)) {
      out += '$'
      position = dollar + 1
      continue
    }
    const close = text.indexOf('}', dollar + 2)
    if (close === -1) {
      problems.push('unterminated "${" (write "$${" for a literal "${")')
      return { text, problems }
    }
    const inner = text.slice(dollar + 2, close)
    const reference = REFERENCE.exec(inner)
    position = close + 1
    if (reference === null) {
      problems.push(`invalid variable reference "\${${inner}}": expected \${NAME} or \${NAME:-default}`)
      continue
    }
    const [, name = '', fallback] = reference
    const value = Object.hasOwn(env, name) ? env[name] : undefined
    if (fallback !== undefined && (value === undefined || value === '')) out += fallback
    else if (value !== undefined) out += value
    else problems.push(`environment variable ${name} is not set (write \${${name}:-default} to give a default)`)
  }
  out += text.slice(position)
  return { text: out, problems }
}

/** Expands every string scalar in place; returns the paths that could not be expanded. */
function expandDocument (doc: Document, env: Env, problems: Problems): Path[] {
  const failed: Path[] = []
  const visit = (node: unknown, path: Path): void => {
    if (isMap(node)) {
      for (const pair of node.items) visit(pair.value, [...path, keyText(pair.key)])
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => { visit(item, [...path, index]) })
    } else if (isScalar(node) && typeof node.value === 'string') {
      const result = expandString(node.value, env)
      for (const problem of result.problems) problems.add(problem, path, startOf(node))
      if (result.problems.length > 0) failed.push(path)
      else node.value = result.text
    }
  }
  visit(doc.contents, [])
  return failed
}

// ---------------------------------------------------------------------------------------------
// Validation

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A TypeBox error path ("/routes/2/maxTtl") as segments, array indexes as numbers. */
function pointerToPath (pointer: string, root: unknown): Segment[] {
  if (pointer === '') return []
  const path: Segment[] = []
  let value = root
  for (const escaped of pointer.slice(1).split('/')) {
    const key = escaped.replaceAll('~1', '/').replaceAll('~0', '~')
    if (Array.isArray(value)) {
      const index = Number(key)
      path.push(index)
      value = value[index]
    } else {
      path.push(key)
      value = isRecord(value) ? value[key] : undefined
    }
  }
  return path
}

function isWithin (path: Path, prefix: Path): boolean {
  return prefix.length <= path.length && prefix.every((segment, index) => path[index] === segment)
}

function expectedOf (schema: TSchema): string {
  const phrase: unknown = schema['expected']
  if (typeof phrase === 'string') return phrase
  if (KindGuard.IsObject(schema)) return 'a mapping'
  if (KindGuard.IsArray(schema)) return 'a list'
  if (KindGuard.IsString(schema)) return 'a string'
  return 'a valid value'
}

function editDistance (a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost)
    }
    previous = current
  }
  return previous[b.length] ?? 0
}

function unknownKey (key: string, allowed: string[]): string {
  const near = allowed.find((name) => name.toLowerCase() === key.toLowerCase()) ??
    allowed.find((name) => name.length > 3 && editDistance(name.toLowerCase(), key.toLowerCase()) <= 2)
  const hint = near === undefined ? '' : `, did you mean "${near}"?`
  return `unknown key${hint} (allowed: ${allowed.join(', ')})`
}

function schemaProblems (raw: unknown, doc: Document, problems: Problems, unexpanded: Path[]): void {
  const reported = new Set<string>()
  for (const error of Value.Errors(FileSchema, raw)) {
    const path = pointerToPath(error.path, raw)
    const id = formatPath(path)
    // One problem per place; a value whose ${VAR} failed is already reported.
    if (reported.has(id) || unexpanded.some((failed) => isWithin(path, failed))) continue
    reported.add(id)
    if (error.type === ValueErrorType.ObjectAdditionalProperties) {
      const allowed = KindGuard.IsObject(error.schema) ? Object.keys(error.schema.properties) : []
      problems.add(unknownKey(String(path.at(-1)), allowed), path, locate(doc, path, 'key'))
    } else if (error.type === ValueErrorType.ObjectRequiredProperty) {
      problems.add('required key is missing', path, locate(doc, path.slice(0, -1), 'value'))
    } else {
      const message = leafProblem(error.schema, error.value) ?? `expected ${expectedOf(error.schema)}, got ${show(error.value)}`
      problems.add(message, path, locate(doc, path, 'value'))
    }
  }
}

function describeRoute (host: string | undefined, path: string): string {
  return `host "${host ?? '*'}" path "${path}"`
}

/** Rules across values, checked on every section that passed the schema on its own. */
function crossProblems (raw: unknown, doc: Document, problems: Problems): void {
  if (!isRecord(raw)) return
  if (Value.Check(RedisSchema, raw['redis'])) {
    const redis = raw['redis']
    const hasUrl = redis.url !== undefined && redis.url !== ''
    const hasCluster = redis.cluster !== undefined && redis.cluster.length > 0
    if (hasUrl && hasCluster) problems.add('set either url or cluster, not both', ['redis'], locate(doc, ['redis'], 'value'))
    if (!hasUrl && !hasCluster) problems.add('expected url or a non-empty cluster list, got neither', ['redis'], locate(doc, ['redis'], 'value'))
  }

  const routes = Array.isArray(raw['routes']) ? raw['routes'] : []
  const names = new Map<string, number>()
  const earlier: Array<{ index: number, host: string | undefined, path: string }> = []
  for (const [index, route] of routes.entries()) {
    if (!Value.Check(RouteSchema, route)) continue
    const name = route.name ?? `route-${index}`
    const first = names.get(name)
    if (first === undefined) names.set(name, index)
    else {
      const path = route.name === undefined ? ['routes', index] : ['routes', index, 'name']
      problems.add(`duplicate route name "${name}": already routes[${first}]`, path, locate(doc, path, 'value'))
    }

    const host = route.host === undefined ? undefined : normalizeRouteHost(route.host)
    const path = route.path ?? '/'
    const here = ['routes', index]
    const same = earlier.find((other) => other.host === host && other.path === path)
    // An earlier route for the same host (or any host) whose prefix covers this one wins every request.
    const cover = earlier.find((other) => (other.host === undefined || other.host === host) && pathMatches(other.path, path))
    if (same !== undefined) {
      problems.add(`duplicate route: ${describeRoute(host, path)} is already routes[${same.index}]`, here, locate(doc, here, 'value'))
    } else if (cover !== undefined) {
      problems.add(`unreachable route: routes[${cover.index}] (${describeRoute(cover.host, cover.path)}) comes first and matches every request this one would`,
        here, locate(doc, here, 'value'))
    }
    earlier.push({ index, host, path })
  }

  for (const problem of integrationProblems(raw, { cdn: (e) => Value.Check(CdnSchema, e), webhook: (e) => Value.Check(WebhookSchema, e) })) {
    problems.add(problem.message, problem.path, locate(doc, problem.path, 'value'))
  }
}

// ---------------------------------------------------------------------------------------------
// Building the resolved config

/** Milliseconds of a validated duration. */
function ms (value: number | string): number {
  const result = parseDuration(value)
  if (result === undefined) throw new Error(`unreachable: validated duration ${show(value)} did not parse`)
  return result
}

/** Bytes of a validated size. */
function bytes (value: number | string): number {
  const result = parseSize(value)
  if (result === undefined) throw new Error(`unreachable: validated size ${show(value)} did not parse`)
  return result
}

function unsetIfEmpty (value: string | undefined): string | undefined {
  return value === '' ? undefined : value
}

function buildRedis (redis: ReturnType<typeof fill<typeof RedisSchema.properties>>): RedisConfig {
  const breaker = fill(BreakerSchema, redis.breaker)
  return {
    url: unsetIfEmpty(redis.url),
    cluster: [...redis.cluster],
    keyPrefix: redis.keyPrefix,
    commandTimeout: ms(redis.commandTimeout),
    writeTimeout: ms(redis.writeTimeout),
    breaker: { failures: toWholeNumber(breaker.failures), cooldown: ms(breaker.cooldown) }
  }
}

function buildRoute (route: RouteFile, index: number): RouteConfig {
  const filled = fill(RouteSchema, route)
  const key = fill(KeySchema, filled.key)
  const timeouts = fill(TimeoutsSchema, filled.timeouts)
  const origin = new URL(filled.origin)
  return {
    name: filled.name ?? `route-${index}`,
    host: filled.host === undefined ? undefined : normalizeRouteHost(filled.host),
    path: filled.path,
    // Lower-case host, default port dropped, no trailing slash: http://API:80/v1/ -> http://api/v1
    origin: `${origin.protocol}//${origin.host}${origin.pathname.replace(/\/+$/, '')}`,
    enabled: toFlag(filled.enabled),
    defaultTtl: filled.defaultTtl === undefined ? undefined : ms(filled.defaultTtl),
    maxTtl: filled.maxTtl === undefined ? undefined : ms(filled.maxTtl),
    key: {
      ignoreQuery: [...key.ignoreQuery],
      headers: key.headers.map((name) => name.toLowerCase()),
      cookies: [...key.cookies]
    },
    staleWhileRevalidate: ms(filled.staleWhileRevalidate),
    staleIfError: ms(filled.staleIfError),
    keep: ms(filled.keep),
    downstreamCacheControl: filled.downstreamCacheControl,
    keepTagHeaders: toFlag(filled.keepTagHeaders),
    ...(filled.tagHeader !== undefined ? { tagHeader: filled.tagHeader } : {}),
    storeContentTypes: filled.storeContentTypes.map((type) => type.toLowerCase()),
    storePostResponses: toFlag(filled.storePostResponses),
    timeouts: {
      connect: ms(timeouts.connect),
      headers: ms(timeouts.headers),
      body: ms(timeouts.body),
      ...(timeouts.total === undefined ? {} : { total: ms(timeouts.total) })
    },
    maxConnections: toWholeNumber(filled.maxConnections),
    l1: toFlag(filled.l1),
    ttlJitter: toDecimalNumber(filled.ttlJitter),
    refreshAhead: toFlag(filled.refreshAhead),
    implicitCachingWithCookies: toFlag(filled.implicitCachingWithCookies),
    ignoreClientNoCache: toFlag(filled.ignoreClientNoCache),
    languageSelection: toFlag(filled.languageSelection)
  }
}

function build (file: string, raw: FileConfig): GatewayConfig {
  const top = fill(FileSchema, raw)
  const listen = fill(ListenSchema, raw.listen)
  const admin = fill(AdminSchema, raw.admin)
  const cache = fill(CacheSchema, raw.cache)
  const limits = fill(LimitsSchema, raw.limits)
  const purgeMethod = fill(PurgeMethodSchema, raw.purgeMethod)
  const redis: RedisFile | undefined = raw.redis
  return {
    file,
    listen: { host: listen.host, port: toWholeNumber(listen.port) },
    admin: {
      host: admin.host,
      port: toWholeNumber(admin.port),
      token: unsetIfEmpty(admin.token),
      webhookSecret: unsetIfEmpty(admin.webhookSecret),
      webhookTolerance: ms(admin.webhookTolerance)
    },
    redis: redis === undefined ? undefined : buildRedis(fill(RedisSchema, redis)),
    cache: {
      memoryMaxBytes: bytes(cache.memoryMaxBytes),
      maxObjectSize: bytes(cache.maxObjectSize),
      maxVariants: toWholeNumber(cache.maxVariants),
      l1MaxBytes: bytes(cache.l1MaxBytes),
      l1MaxTtl: ms(cache.l1MaxTtl),
      coalesceWait: ms(cache.coalesceWait),
      hitForMiss: ms(cache.hitForMiss)
    },
    limits: {
      maxUrlLength: toWholeNumber(limits.maxUrlLength),
      maxHeaderBytes: bytes(limits.maxHeaderBytes),
      maxBodyBytes: bytes(limits.maxBodyBytes),
      requestBodyTimeout: ms(limits.requestBodyTimeout)
    },
    purgeMethod: { enabled: toFlag(purgeMethod.enabled), allow: [...purgeMethod.allow] },
    shutdownTimeout: ms(top.shutdownTimeout),
    trustedProxies: [...top.trustedProxies],
    stripHeaders: top.stripHeaders.map((name) => name.toLowerCase()),
    redactQueryParams: top.redactQueryParams.map((name) => name.toLowerCase()),
    routes: top.routes.map(buildRoute),
    ...(raw.cdn !== undefined && raw.cdn.length > 0 ? { cdn: buildCdn(raw.cdn) } : {}),
    ...(raw.webhooks !== undefined && raw.webhooks.length > 0 ? { webhooks: buildWebhooks(raw.webhooks) } : {})
  }
}

/** Object.freeze all the way down, so no consumer can change the config it was handed. */
function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
