/**
 * Binary codec for a stored CacheEntry (Redis values, anything that stores bytes).
 *
 *   offset 0  4 bytes  magic + version: 'C' 'G' 'E' 0x01
 *   offset 4  4 bytes  meta length N, unsigned big-endian
 *   offset 8  N bytes  meta: UTF-8 JSON of every field but the body
 *   offset 8+N         the body, raw bytes (no base64, no JSON)
 *
 * `invalidatedAt` is always the FIRST member of the meta JSON: the Redis store's soft purge
 * rewrites that one number in place inside a Lua script (src/store/redis.ts) without parsing
 * the rest. Keep it first if the meta ever changes, and bump the version byte when the meta's
 * shape changes incompatibly (old values then decode as null, i.e. as misses).
 *
 * decodeEntry never throws: anything malformed gives null, which a store treats as a miss.
 */
import type { CacheEntry, HeaderMap } from './entry.ts'
import type { CacheKey } from './key.ts'

/** 'CGE' + format version 1, as a latin1 string (the Redis Lua scripts compare against it). */
export const ENTRY_MAGIC = 'CGE\u0001'
const MAGIC = Buffer.from(ENTRY_MAGIC, 'latin1')
const HEADER_BYTES = 8

/** Everything but the body, in the order written (invalidatedAt first: see above). */
interface EntryMeta {
  invalidatedAt: number
  url: string
  status: number
  headers: HeaderMap
  requestTime: number
  responseTime: number
  initialAge: number
  freshness: number
  staleWhileRevalidate: number
  staleIfError: number
  vary: Record<string, string | null>
  tags: string[]
  mustRevalidate: boolean
  noCache: boolean
}

export function encodeEntry (e: CacheEntry): Buffer {
  const meta: EntryMeta = {
    invalidatedAt: e.invalidatedAt,
    url: e.url,
    status: e.status,
    headers: e.headers,
    requestTime: e.requestTime,
    responseTime: e.responseTime,
    initialAge: e.initialAge,
    freshness: e.freshness,
    staleWhileRevalidate: e.staleWhileRevalidate,
    staleIfError: e.staleIfError,
    vary: e.vary,
    tags: e.tags,
    mustRevalidate: e.mustRevalidate,
    noCache: e.noCache
  }
  const json = Buffer.from(JSON.stringify(meta), 'utf8')
  const out = Buffer.allocUnsafe(HEADER_BYTES + json.length + e.body.length)
  MAGIC.copy(out, 0)
  out.writeUInt32BE(json.length, 4)
  json.copy(out, HEADER_BYTES)
  out.set(e.body, HEADER_BYTES + json.length)
  return out
}

/**
 * The entry in `buf`, or null when `buf` is not a well-formed entry of this version.
 * The returned body is a view (`subarray`) of `buf`, not a copy.
 */
export function decodeEntry (buf: Buffer): CacheEntry | null {
  if (buf.length < HEADER_BYTES || buf.compare(MAGIC, 0, 4, 0, 4) !== 0) return null
  const metaLength = buf.readUInt32BE(4)
  if (metaLength > buf.length - HEADER_BYTES) return null
  let parsed: unknown
  try {
    parsed = JSON.parse(buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + metaLength))
  } catch {
    return null
  }
  if (!isMeta(parsed)) return null
  return {
    url: parsed.url as CacheKey,
    status: parsed.status,
    headers: parsed.headers,
    body: buf.subarray(HEADER_BYTES + metaLength),
    requestTime: parsed.requestTime,
    responseTime: parsed.responseTime,
    initialAge: parsed.initialAge,
    freshness: parsed.freshness,
    staleWhileRevalidate: parsed.staleWhileRevalidate,
    staleIfError: parsed.staleIfError,
    vary: parsed.vary,
    tags: parsed.tags,
    mustRevalidate: parsed.mustRevalidate,
    noCache: parsed.noCache,
    invalidatedAt: parsed.invalidatedAt
  }
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isFiniteNumber (v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v)
}

function isHeaderMap (v: unknown): v is HeaderMap {
  if (!isRecord(v)) return false
  for (const value of Object.values(v)) {
    if (typeof value === 'string') continue
    if (!Array.isArray(value) || !value.every((s) => typeof s === 'string')) return false
  }
  return true
}

function isVaryValues (v: unknown): v is Record<string, string | null> {
  return isRecord(v) && Object.values(v).every((s) => s === null || typeof s === 'string')
}

function isMeta (v: unknown): v is EntryMeta {
  return isRecord(v) &&
    typeof v.url === 'string' &&
    Number.isInteger(v.status) &&
    isHeaderMap(v.headers) &&
    isFiniteNumber(v.requestTime) &&
    isFiniteNumber(v.responseTime) &&
    isFiniteNumber(v.initialAge) &&
    isFiniteNumber(v.freshness) &&
    isFiniteNumber(v.staleWhileRevalidate) &&
    isFiniteNumber(v.staleIfError) &&
    isFiniteNumber(v.invalidatedAt) &&
    isVaryValues(v.vary) &&
    Array.isArray(v.tags) && v.tags.every((s) => typeof s === 'string') &&
    typeof v.mustRevalidate === 'boolean' &&
    typeof v.noCache === 'boolean'
}
