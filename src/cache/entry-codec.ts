/**
 * Binary codec for a stored CacheEntry (Redis values, anything that stores bytes).
 *
 *   offset 0  4 bytes  magic + version: 'C' 'G' 'E' 0x02
 *   offset 4  4 bytes  meta length N, unsigned big-endian
 *   offset 8  N bytes  meta: UTF-8 JSON of every field but the body, plus the body's seal
 *   offset 8+N         the body, raw bytes (no base64, no JSON)
 *
 * `invalidatedAt` is always the FIRST member of the meta JSON: the Redis store's soft purge
 * rewrites that one number in place inside a Lua script (src/store/redis.ts) without parsing
 * the rest. Keep it first if the meta ever changes, and bump the version byte when the meta's
 * shape changes incompatibly (old values then decode as a 'version' problem, i.e. as misses).
 *
 * Version 2 added the body's seal (`bodyLength`, `bodyCrc32`, see entry-check.ts), recorded
 * when the entry is encoded and checked when it is decoded: a value cut short or damaged in
 * the store decodes as a problem instead of a shorter 200 with the original ETag.
 *
 * Stored bytes are untrusted: decodeEntry never throws, and everything it returns has passed
 * entryProblem (entry-check.ts), the same check every store applies to what it reads.
 */
import type { CacheEntry, HeaderMap } from './entry.ts'
import { bodyProblem, entryProblem, isSeal, sealBody, type EntryProblem } from './entry-check.ts'
import type { CacheKey } from './key.ts'

/** 'CGE' + format version 2, as a latin1 string (the Redis Lua scripts compare against it). */
export const ENTRY_MAGIC = 'CGE\u0002'
const MAGIC = Buffer.from(ENTRY_MAGIC, 'latin1')
/** The magic of any version: a value that has it but another version byte is an old entry. */
const FAMILY = MAGIC.subarray(0, 3)
const HEADER_BYTES = 8

/** Everything but the body, in the order written (invalidatedAt first: see above). */
interface EntryMeta {
  invalidatedAt: number
  bodyLength: number
  bodyCrc32: number
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
  const seal = sealBody(e.body)
  const meta: EntryMeta = {
    invalidatedAt: e.invalidatedAt,
    bodyLength: seal.length,
    bodyCrc32: seal.crc32,
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

export type DecodeResult = { ok: true, entry: CacheEntry } | { ok: false, problem: EntryProblem }

/**
 * The entry in `buf` when it is a well-formed entry of this version for `url`, whose body
 * matches its seal and whose fields pass entryProblem; otherwise the first problem found.
 * The returned body is a view (`subarray`) of `buf`, not a copy.
 */
export function decodeEntry (buf: Buffer, url: CacheKey): DecodeResult {
  if (buf.length < 4 || buf.compare(MAGIC, 0, 4, 0, 4) !== 0) {
    return { ok: false, problem: buf.length >= 4 && buf.compare(FAMILY, 0, 3, 0, 3) === 0 ? 'version' : 'format' }
  }
  if (buf.length < HEADER_BYTES) return { ok: false, problem: 'format' }
  const metaLength = buf.readUInt32BE(4)
  if (metaLength > buf.length - HEADER_BYTES) return { ok: false, problem: 'format' }
  let parsed: unknown
  try {
    parsed = JSON.parse(buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + metaLength))
  } catch {
    return { ok: false, problem: 'format' }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, problem: 'format' }
  const m = parsed as Partial<Record<keyof EntryMeta, unknown>>
  if (!isSeal(m.bodyLength, m.bodyCrc32)) return { ok: false, problem: 'field' }
  const body = buf.subarray(HEADER_BYTES + metaLength)
  const sealed = bodyProblem(body, { length: m.bodyLength as number, crc32: m.bodyCrc32 as number })
  if (sealed !== undefined) return { ok: false, problem: sealed }
  // Typed as the entry it claims to be; entryProblem checks every field at run time.
  const entry = {
    url: m.url,
    status: m.status,
    headers: m.headers,
    body,
    requestTime: m.requestTime,
    responseTime: m.responseTime,
    initialAge: m.initialAge,
    freshness: m.freshness,
    staleWhileRevalidate: m.staleWhileRevalidate,
    staleIfError: m.staleIfError,
    vary: m.vary,
    tags: m.tags,
    mustRevalidate: m.mustRevalidate,
    noCache: m.noCache,
    invalidatedAt: m.invalidatedAt
  } as unknown as CacheEntry
  const problem = entryProblem(entry, url)
  return problem === undefined ? { ok: true, entry } : { ok: false, problem }
}
