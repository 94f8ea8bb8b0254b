/**
 * Shared store on Redis or Redis Cluster. Key layout, TTL rules and index pruning are
 * described in ./README.md and computed in ./redis-keys.ts.
 *
 * Failure mode: every Redis error (connection down, command timeout, script error) rejects
 * the returned promise; nothing is retried or swallowed here. The caller decides to fail
 * open. Only malformed stored data is absorbed: a value that does not decode, fails the entry
 * check (src/cache/entry-check.ts: fields, body seal) or names another URL is a miss; it is
 * deleted (only if Redis still holds those very bytes) and reported to onInvalidEntry listeners.
 */
import { createHash } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import type { ClusterOptions, RedisOptions } from 'ioredis'
import type { CacheEntry } from '../cache/entry.ts'
import { decodeEntry, encodeEntry, ENTRY_MAGIC, type DecodeResult } from '../cache/entry-codec.ts'
import type { EntryProblem } from '../cache/entry-check.ts'
import { NO_VARIANT, originOf, type CacheKey, type VariantId } from '../cache/key.ts'
import type { Clock } from '../clock.ts'
import {
  assertKeyPrefix, originIndexKeys, originsIndexKeys, tagIndexKeys, urlKeys
} from './redis-keys.ts'
import type { IndexKeys } from './redis-keys.ts'
import { ReadBatch, type Value } from './redis-batch.ts'
import { checkPut, reportInvalid, varyNames, type InvalidEntryListener, type PutOptions, type Store, type StoreLookup } from './store.ts'
import { BoundedMap } from '../bounded-map.ts'

/** Index writes and reads go this many at a time. */
const BATCH = 500

export interface RedisClientOptions {
  /** redis://… of a single server (or a primary behind a proxy). Give this or `cluster`. */
  url?: string
  /** Seed nodes of a Redis Cluster, as "host:port" or redis:// URLs. */
  cluster?: string[]
  /** Milliseconds a command may take before it rejects; undefined: the caller times its calls. */
  commandTimeout: number | undefined
}

const CONNECT_TIMEOUT_MS = 2000
const MAX_BACKOFF_MS = 2000

/** Reconnect soon after a blip, then back off to at most MAX_BACKOFF_MS; never give up. */
function backoff (attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 10), MAX_BACKOFF_MS)
}

/**
 * A client configured the way the stores expect: no offline queue and one retry, so an
 * outage turns into prompt rejections rather than queued commands; a command timeout; auto
 * pipelining, which batches the concurrent commands of many requests into few writes.
 *
 * The caller owns the client: attach an 'error' listener (ioredis prints unhandled ones),
 * wait for 'ready' before relying on it (commands issued while connecting reject), and
 * `quit()` it on shutdown. Must not be given ioredis' own `keyPrefix`.
 */
export function createRedisClient (options: RedisClientOptions): Redis | Cluster {
  const { url, cluster, commandTimeout } = options
  if (commandTimeout !== undefined && (!Number.isFinite(commandTimeout) || commandTimeout <= 0)) {
    throw new RangeError(`commandTimeout must be a positive number of ms, got ${String(commandTimeout)}`)
  }
  if (url !== undefined && cluster !== undefined) {
    throw new TypeError('createRedisClient takes url or cluster, not both')
  }
  const connection = {
    maxRetriesPerRequest: 1,
    ...(commandTimeout !== undefined ? { commandTimeout } : {}),
    connectTimeout: CONNECT_TIMEOUT_MS
  } satisfies RedisOptions
  if (cluster !== undefined) {
    if (cluster.length === 0) throw new TypeError('cluster needs at least one seed node')
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: backoff,
      redisOptions: connection
    }
    return new Cluster(cluster, clusterOptions)
  }
  if (url === undefined) throw new TypeError('createRedisClient needs url or cluster')
  return new Redis(url, {
    ...connection,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    retryStrategy: backoff
  })
}

export interface RedisStoreOptions {
  client: Redis | Cluster
  /**
   * A second client for puts, deletes and soft purges, usually with a longer command timeout:
   * a large body in flight on it does not hold up the lookups queued behind it, and a slow write
   * is not cut short by the read timeout. Defaults to `client`.
   */
  writeClient?: Redis | Cluster
  /** Prepended to every key, e.g. "cg:". Must not contain braces. */
  keyPrefix: string
  clock: Clock
}

/*
 * Lua. Each script touches the keys of one URL (one hash tag, so one Cluster slot) or of
 * one index. Entry keys are derived inside the script from the `:vs` members and the
 * entry prefix: Redis cannot be told about them in advance, and they share the slot.
 */

// KEYS: vary, variants, entry. ARGV: entryPrefix, variant, value, varyRecord, ttlMs, maxVariants, now
const PUT_LUA = `
local ttl = tonumber(ARGV[5])
local maxVariants = tonumber(ARGV[6])
local now = tonumber(ARGV[7])
if redis.call('GET', KEYS[1]) ~= ARGV[4] then
  local old = redis.call('ZRANGE', KEYS[2], 0, -1)
  old[#old + 1] = ''
  for i = 1, #old do redis.call('UNLINK', ARGV[1] .. old[i]) end
  redis.call('UNLINK', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ttl)
local score = now
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then score = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[2], score, ARGV[2])
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #members do
  if redis.call('EXISTS', ARGV[1] .. members[i]) == 0 then redis.call('ZREM', KEYS[2], members[i]) end
end
local n = redis.call('ZCARD', KEYS[2])
if n > maxVariants then
  local victims = redis.call('ZRANGE', KEYS[2], 0, n - maxVariants - 1)
  for i = 1, #victims do redis.call('UNLINK', ARGV[1] .. victims[i]) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - maxVariants - 1)
end
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
`

// KEYS: vary, variants, entry. ARGV: entryPrefix, variant. The URL's keys go with its last variant.
const DELETE_VARIANT_LUA = `
redis.call('UNLINK', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
local members = redis.call('ZRANGE', KEYS[2], 0, -1)
local live = 0
for i = 1, #members do
  if redis.call('EXISTS', ARGV[1] .. members[i]) == 1 then live = live + 1
  else redis.call('ZREM', KEYS[2], members[i]) end
end
if live == 0 then redis.call('UNLINK', KEYS[1], KEYS[2]) end
return live
`

// KEYS: vary, variants, entry. ARGV: entryPrefix, variant, SHA-1 (hex) of the refused value.
// Deletes the variant as DELETE_VARIANT_LUA does, but only while the key still holds the
// refused bytes: a put that replaced them meanwhile is kept. Returns -1 when nothing went.
const DELETE_INVALID_LUA = `
local v = redis.call('GET', KEYS[3])
if not v or redis.sha1hex(v) ~= ARGV[3] then return -1 end
${DELETE_VARIANT_LUA}`

// The no-Vary entry is included even when the variant set lacks it (a variant set lost to
// maxmemory eviction must not let a purged no-Vary entry answer lookups again).
const MEMBERS_LUA = (variantsKey: string): string => `
local members = redis.call('ZRANGE', ${variantsKey}, 0, -1)
if not redis.call('ZSCORE', ${variantsKey}, '') then members[#members + 1] = '' end`

// KEYS: vary, variants. ARGV: entryPrefix. Returns how many entries existed.
const DELETE_URL_LUA = `${MEMBERS_LUA('KEYS[2]')}
local n = 0
for i = 1, #members do n = n + redis.call('UNLINK', ARGV[1] .. members[i]) end
redis.call('UNLINK', KEYS[1], KEYS[2])
return n
`

// KEYS: variants. ARGV: entryPrefix, at (a JSON number), magic.
// Rewrites the leading "invalidatedAt" member of each entry's meta (see entry-codec.ts),
// keeping an earlier soft purge, and the key's TTL. Returns how many entries it found.
const MARK_STALE_LUA = `${MEMBERS_LUA('KEYS[1]')}
local at = tonumber(ARGV[2])
local found = 0
for i = 1, #members do
  local key = ARGV[1] .. members[i]
  local v = redis.call('GET', key)
  if v and #v >= 8 and string.sub(v, 1, 4) == ARGV[3] then
    local b1, b2, b3, b4 = string.byte(v, 5, 8)
    local len = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    local meta = string.sub(v, 9, 8 + len)
    local cur = string.match(meta, '^{"invalidatedAt":([-+.%deE]+),')
    if cur then
      found = found + 1
      local c = tonumber(cur)
      if c == 0 or c > at then
        local m = '{"invalidatedAt":' .. ARGV[2] .. string.sub(meta, 18 + #cur)
        local n = #m
        local head = ARGV[3] .. string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
        redis.call('SET', key, head .. m .. string.sub(v, 9 + len), 'KEEPTTL')
      end
    end
  end
end
return found
`

// KEYS: members, expiry. ARGV: member, expiresAt, now, ttlMs.
// Prunes up to 500 members whose entries have all expired, adds the member, raises its
// expiry (never lowers it) and extends (never shortens) both keys' TTLs.
const INDEX_ADD_LUA = `
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, ${BATCH})
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('ZREM', KEYS[2], unpack(dead))
end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[4])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
`

// KEYS: members, expiry. ARGV: lex min, lex max, limit, now.
// One page in lexical order: { members read, last member read, ...members not yet expired }.
const INDEX_PAGE_LUA = `
local page = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
if #page == 0 then return { 0 } end
local now = tonumber(ARGV[4])
local scores = redis.call('ZMSCORE', KEYS[2], unpack(page))
local out = { #page, page[#page] }
for i = 1, #page do
  if scores[i] and tonumber(scores[i]) > now then out[#out + 1] = page[i] end
end
return out
`

type Arg = string | Buffer | number
type ScriptCall = (...args: Arg[]) => Promise<unknown>

interface StoreScripts {
  cachegateStorePut: ScriptCall
  cachegateStoreDeleteVariant: ScriptCall
  cachegateStoreDeleteInvalid: ScriptCall
  cachegateStoreDeleteUrl: ScriptCall
  cachegateStoreMarkStale: ScriptCall
  cachegateStoreIndexAdd: ScriptCall
  cachegateStoreIndexPage: ScriptCall
}

const SCRIPTS: Record<keyof StoreScripts, { lua: string, numberOfKeys: number, readOnly?: boolean }> = {
  cachegateStorePut: { lua: PUT_LUA, numberOfKeys: 3 },
  cachegateStoreDeleteVariant: { lua: DELETE_VARIANT_LUA, numberOfKeys: 3 },
  cachegateStoreDeleteInvalid: { lua: DELETE_INVALID_LUA, numberOfKeys: 3 },
  cachegateStoreDeleteUrl: { lua: DELETE_URL_LUA, numberOfKeys: 2 },
  cachegateStoreMarkStale: { lua: MARK_STALE_LUA, numberOfKeys: 1 },
  cachegateStoreIndexAdd: { lua: INDEX_ADD_LUA, numberOfKeys: 2 },
  cachegateStoreIndexPage: { lua: INDEX_PAGE_LUA, numberOfKeys: 2, readOnly: true }
}

export class RedisStore implements Store {
  readonly kind = 'redis'
  readonly #client: Redis | Cluster
  readonly #scripts: StoreScripts
  readonly #writes: StoreScripts
  readonly #prefix: string
  readonly #clock: Clock
  readonly #decoded = new DecodedEntries()
  /** Standalone Redis: the reads of one event-loop turn in one MGET (redis-batch.ts). Cluster: none. */
  readonly #batch: ReadBatch | undefined
  /** Per URL, the keys a lookup reads (its Vary record, its no-Vary entry), built once: hot URLs only (rebuilding is cheap). */
  readonly #lookupKeys = new BoundedMap<CacheKey, readonly [string, string]>({
    maxEntries: 10_000,
    maxBytes: 4 * 1024 * 1024,
    sizeOf: (keys) => (keys[0].length + keys[1].length) * 2 + 48
  })

  readonly #invalidListeners = new Set<InvalidEntryListener>()
  /** Refused values being deleted: entry id -> SHA-1 of the value (one delete and one report per value). */
  readonly #discarding = new Map<string, string>()

  constructor (options: RedisStoreOptions) {
    assertKeyPrefix(options.keyPrefix)
    const { client } = options
    const writer = options.writeClient ?? client
    for (const c of new Set([client, writer])) {
      // ioredis' keyPrefix would prefix KEYS but not the keys the Lua scripts derive.
      const clientPrefix = c instanceof Cluster ? c.options.keyPrefix ?? c.options.redisOptions?.keyPrefix : c.options.keyPrefix
      if (clientPrefix !== undefined && clientPrefix !== '') {
        throw new TypeError('RedisStore needs a client without ioredis keyPrefix; use the keyPrefix option of RedisStore')
      }
      // Defining the same commands again on a shared client is harmless: same name, same Lua.
      for (const [name, definition] of Object.entries(SCRIPTS)) c.defineCommand(name, definition)
    }
    this.#client = client
    this.#batch = client instanceof Cluster ? undefined : new ReadBatch(client)
    this.#scripts = client as unknown as StoreScripts
    this.#writes = writer as unknown as StoreScripts
    this.#prefix = options.keyPrefix
    this.#clock = options.clock
  }

  /**
   * One round trip: the URL's Vary record and no-Vary entry (both keys carry the URL's hash tag,
   * so the MGET is single-slot on a Cluster too). On a standalone Redis the lookups of one turn
   * of the event loop share one MGET (redis-batch.ts); each still gets only its own keys' values.
   */
  lookup (url: CacheKey): Promise<StoreLookup> {
    let keys = this.#lookupKeys.peek(url)
    if (keys === undefined) {
      const k = urlKeys(this.#prefix, url)
      keys = [k.vary, k.entry(NO_VARIANT)] as const
      this.#lookupKeys.set(url, keys)
    }
    const answer = (values: readonly Value[], at: number): StoreLookup =>
      ({ vary: parseVary(values[at] ?? null), entry: this.#entry(url, NO_VARIANT, values[at + 1] ?? null) })
    if (this.#batch !== undefined) return this.#batch.read(keys, answer)
    return this.#client.mgetBuffer(keys[0], keys[1]).then((values) => answer(values, 0))
  }

  getVariant (url: CacheKey, variant: VariantId): Promise<CacheEntry | null> {
    const key = urlKeys(this.#prefix, url).entry(variant)
    if (this.#batch !== undefined) return this.#batch.read([key], (values, at) => this.#entry(url, variant, values[at] ?? null))
    return this.#client.getBuffer(key).then((raw) => this.#entry(url, variant, raw))
  }

  onInvalidEntry (listener: InvalidEntryListener): () => void {
    this.#invalidListeners.add(listener)
    return () => { this.#invalidListeners.delete(listener) }
  }

  /** The entry the bytes hold, or null when absent or refused (then deleted and reported). */
  #entry (url: CacheKey, variant: VariantId, raw: Buffer | null): CacheEntry | null {
    if (raw === null) return null
    const result = this.#decoded.read(url, variant, raw)
    if (result.ok) return result.entry
    this.#discard(url, variant, raw, result.problem)
    return null
  }

  /**
   * Deletes a refused value in the background, on the write connection, only while Redis still
   * holds these bytes, then reports it. The read does not wait: it is a miss either way.
   */
  #discard (url: CacheKey, variant: VariantId, raw: Buffer, problem: EntryProblem): void {
    const id = `${url}\n${variant}`
    const digest = createHash('sha1').update(raw).digest('hex')
    if (this.#discarding.get(id) === digest) return
    this.#discarding.set(id, digest)
    const keys = urlKeys(this.#prefix, url)
    const report = (deleted: boolean): void => {
      if (this.#discarding.get(id) === digest) this.#discarding.delete(id)
      reportInvalid(this.#invalidListeners, { url, variant, problem, store: 'redis', deleted })
    }
    this.#writes.cachegateStoreDeleteInvalid(keys.vary, keys.variants, keys.entry(variant), keys.entryPrefix, variant, digest)
      .then(() => { report(true) }, () => { report(false) })
  }

  async put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void> {
    checkPut(url, entry, options)
    const ttlMs = Math.ceil(options.ttlMs)
    const now = this.#clock.now()
    const expiresAt = now + ttlMs
    const origin = originOf(url)
    // Indexes first: if this put fails half way, an index may name a URL that has no entry
    // (harmless to a purge) but a stored entry is never missing from its indexes.
    const indexes: [IndexKeys, string][] = [
      [originIndexKeys(this.#prefix, origin), url],
      [originsIndexKeys(this.#prefix), origin]
    ]
    for (const tag of new Set(entry.tags)) indexes.push([tagIndexKeys(this.#prefix, tag), url])
    for (let i = 0; i < indexes.length; i += BATCH) {
      await Promise.all(indexes.slice(i, i + BATCH).map(([keys, member]) =>
        this.#writes.cachegateStoreIndexAdd(keys.members, keys.expiry, member, expiresAt, now, ttlMs)))
    }
    const keys = urlKeys(this.#prefix, url)
    await this.#writes.cachegateStorePut(
      keys.vary, keys.variants, keys.entry(variant),
      keys.entryPrefix, variant, encodeEntry(entry), JSON.stringify(varyNames(entry)), ttlMs, options.maxVariants, now
    )
  }

  async deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    const keys = urlKeys(this.#prefix, url)
    await this.#writes.cachegateStoreDeleteVariant(keys.vary, keys.variants, keys.entry(variant), keys.entryPrefix, variant)
  }

  async deleteUrl (url: CacheKey): Promise<number> {
    const keys = urlKeys(this.#prefix, url)
    return toCount(await this.#writes.cachegateStoreDeleteUrl(keys.vary, keys.variants, keys.entryPrefix))
  }

  async markStale (url: CacheKey, at: number): Promise<number> {
    if (!Number.isFinite(at)) throw new RangeError(`markStale needs a finite time, got ${String(at)}`)
    const keys = urlKeys(this.#prefix, url)
    return toCount(await this.#writes.cachegateStoreMarkStale(keys.variants, keys.entryPrefix, JSON.stringify(at), ENTRY_MAGIC))
  }

  async urlsForTag (tag: string): Promise<CacheKey[]> {
    return await this.#readIndex(tagIndexKeys(this.#prefix, tag), '') as CacheKey[]
  }

  async urlsForPrefix (origin: string, prefix: string): Promise<CacheKey[]> {
    return await this.#readIndex(originIndexKeys(this.#prefix, origin), prefix) as CacheKey[]
  }

  async origins (): Promise<string[]> {
    return await this.#readIndex(originsIndexKeys(this.#prefix), '')
  }

  /** The client belongs to whoever created it; closing the store leaves it open. */
  close (): Promise<void> {
    return Promise.resolve()
  }

  /** Members starting with `prefix` whose entries have not all expired, in lexical order. */
  async #readIndex (keys: IndexKeys, prefix: string): Promise<string[]> {
    const now = this.#clock.now()
    // 0xff sorts after every byte of UTF-8 text, so "[prefix" .. "[prefix\xff" spans the prefix.
    const max: Arg = prefix === '' ? '+' : Buffer.concat([Buffer.from(`[${prefix}`), Buffer.from([0xff])])
    let min = prefix === '' ? '-' : `[${prefix}`
    const out: string[] = []
    for (;;) {
      const reply = await this.#scripts.cachegateStoreIndexPage(keys.members, keys.expiry, min, max, BATCH, now)
      if (!Array.isArray(reply)) throw new TypeError('unexpected Redis reply to an index read')
      const [read, last, ...live] = reply as [number, string?, ...string[]]
      out.push(...live)
      if (read < BATCH || last === undefined) return out
      min = `(${last}`
    }
  }
}

function toCount (reply: unknown): number {
  if (typeof reply !== 'number') throw new TypeError(`unexpected Redis reply ${String(reply)}`)
  return reply
}

/** The record of a URL that does not vary, shared (frozen): the commonest by far. */
const NO_VARY_NAMES: readonly string[] = Object.freeze([])

function parseVary (raw: Buffer | null): readonly string[] | null {
  if (raw === null) return null
  if (raw.length === 2 && raw[0] === 0x5b && raw[1] === 0x5d) return NO_VARY_NAMES // '[]'
  try {
    const names: unknown = JSON.parse(raw.toString('utf8'))
    // The names pick request fields for the variant: field names only (RFC 9110 §5.1 token).
    // A route's key cookies are recorded as `cookie:` and the cookie name (case kept).
    if (isStringArray(names) && names.every((n) => (n.startsWith('cookie:') ? COOKIE_NAME.test(n.slice(7)) : VARY_NAME.test(n)) && n !== '__proto__')) return names
  } catch {}
  return null
}

const VARY_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function isStringArray (v: unknown): v is string[] {
  return Array.isArray(v) && v.every((n) => typeof n === 'string')
}

/**
 * Recently decoded entries with the exact bytes they came from. Every read still fetches the
 * bytes from Redis; when they are byte-for-byte the ones decoded last time for the same URL and
 * variant, the earlier result is handed out again (frozen, so no caller can change it), which
 * saves the decode and lets per-entry work (downstream headers) be reused. Any change in Redis (a
 * new response, a soft purge rewriting invalidatedAt) changes the bytes, and so is decoded afresh.
 * Bounded in bytes; the bytes kept are a copy of exactly the value (a reply is a view of the
 * socket read it arrived in, which may hold many other replies).
 */
class DecodedEntries {
  readonly #byId: BoundedMap<string, { raw: Buffer, result: DecodeResult }>
  readonly #maxBytes: number

  constructor (maxBytes = 32 * 1024 * 1024) {
    this.#maxBytes = maxBytes
    this.#byId = new BoundedMap({ maxEntries: 50_000, maxBytes, sizeOf: (v) => v.raw.length })
  }

  /** Refused values are decoded again on every read: they are rare, and deleted when found. */
  read (url: CacheKey, variant: VariantId, raw: Buffer): DecodeResult {
    // The no-Vary entry by its URL alone: the key the request path already holds, hashed once.
    // A normalized URL has no line break, so the ids of variants cannot collide with it.
    const id = variant === NO_VARIANT ? url : `${url}\n${variant}`
    const known = this.#byId.peek(id)
    if (known !== undefined && known.raw.equals(raw)) return known.result
    if (raw.length > this.#maxBytes / 64) return decodeEntry(raw, url)
    const own = Buffer.allocUnsafeSlow(raw.length)
    raw.copy(own)
    const result = decodeEntry(own, url)
    if (!result.ok) return result
    const entry = result.entry
    for (const value of Object.values(entry.headers)) if (Array.isArray(value)) Object.freeze(value)
    Object.freeze(entry.headers)
    Object.freeze(entry.vary)
    Object.freeze(entry.tags)
    Object.freeze(entry)
    this.#byId.set(id, { raw: own, result: Object.freeze(result) })
    return result
  }
}
