/**
 * Stored entries are untrusted input. Whatever a store hands back (bytes decoded from Redis,
 * an object kept in memory) passes this one check before anything serves it: a value that
 * fails is a miss, never a crash. Node's `res.writeHead` throws on a status outside 100..999
 * and on a field name or value it would not put on the wire; inside a promise callback that
 * became an unhandled rejection and took the process down, on every instance, for one URL.
 *
 * Pure: no I/O, never throws, returns the first problem found as a reason from a small fixed
 * set (a metric label, a log field).
 */
import { crc32 } from 'node:zlib'
import type { CacheEntry } from './entry.ts'
import type { CacheKey } from './key.ts'
import { LANGUAGE_ALIAS } from './vary.ts'

/** Why a stored entry was refused. Bounded: it labels cachegate_store_invalid_entries_total. */
export type EntryProblem =
  /** Not a value of this codec version (another version, or not an entry at all). */
  | 'version'
  /** Bytes that do not decode: header cut short, meta length past the end, JSON malformed. */
  | 'format'
  /** A field missing or of the wrong type, or a number not finite or out of range. */
  | 'field'
  | 'status'
  | 'header-name'
  | 'header-value'
  /** The entry names another URL than the one it was stored under. */
  | 'url'
  /** The body is not as long as recorded at store time (a truncated value). */
  | 'body-length'
  /** The body's checksum differs from the one recorded at store time. */
  | 'checksum'

/** Every EntryProblem, e.g. to pre-register metric labels. */
export const ENTRY_PROBLEMS: readonly EntryProblem[] = [
  'version', 'format', 'field', 'status', 'header-name', 'header-value', 'url', 'body-length', 'checksum'
]

/** What a store records about a body when it stores it, and checks when it reads it back. */
export interface BodySeal {
  length: number
  /** CRC-32 (zlib's) of the body bytes, an unsigned 32-bit integer. */
  crc32: number
}

/**
 * The body's seal. CRC-32, not a cryptographic hash: the seal detects truncation and damage
 * (a cut-short write, a flipped bit, a stray SETRANGE), not forgery: whoever can write to the
 * store can write a matching seal, whatever the hash. Measured on Node 20 (x86-64): CRC-32
 * 45 µs for 256 KiB, 0.3 µs for 1 KiB; SHA-1 and SHA-256 about 3.5 times slower.
 */
export function sealBody (body: Uint8Array): BodySeal {
  return { length: body.length, crc32: crc32(body) }
}

/** Whether the body matches its seal: the length first (cheap, and names a truncation). */
export function bodyProblem (body: Uint8Array, seal: BodySeal): EntryProblem | undefined {
  if (body.length !== seal.length) return 'body-length'
  if (crc32(body) !== seal.crc32) return 'checksum'
  return undefined
}

/** Whether a decoded seal has the right shape (before bodyProblem trusts it). */
export function isSeal (length: unknown, checksum: unknown): boolean {
  return Number.isSafeInteger(length) && (length as number) >= 0 &&
    Number.isInteger(checksum) && (checksum as number) >= 0 && (checksum as number) <= 0xffffffff
}

/** RFC 9110 §5.1, §5.6.2: field-name = token; tchar = "!#$%&'*+-.^_`|~" / DIGIT / ALPHA. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/**
 * RFC 9110 §5.5: field-value = *field-content; VCHAR, SP, HTAB and obs-text (0x80-0xFF), so
 * never CR, LF or NUL. This is exactly what Node's http module accepts; code points above
 * U+00FF (which it also refuses) are outside obs-text anyway.
 */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** Absolute times and durations in ms: 0 up to the largest time a Date can hold (ECMA-262 §21.4.1.1). */
const MAX_MS = 8.64e15

/**
 * Statuses cachegate stores (src/cache/storable.ts): a final response, never 206 (partial
 * content is not stored) nor 304 (it updates an entry, it is never one). 600 and above are
 * not HTTP statuses (RFC 9110 §15).
 */
function storedStatus (status: unknown): boolean {
  return Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599 && status !== 206 && status !== 304
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function inRange (v: unknown): boolean {
  return typeof v === 'number' && v >= 0 && v <= MAX_MS
}

function headersProblem (headers: unknown): EntryProblem | undefined {
  if (!isRecord(headers)) return 'field'
  for (const name of Object.keys(headers)) {
    // `__proto__` is a token, but copying it by assignment would replace a prototype.
    // A request field name, or `cookie:` and a cookie name (a route's key cookies, cache/vary.ts).
    const field = name.startsWith('cookie:') ? name.slice(7) : name
    if (!TOKEN.test(field) || name === '__proto__') return 'header-name'
    const value = headers[name]
    if (typeof value === 'string') {
      if (!FIELD_VALUE.test(value)) return 'header-value'
    } else if (Array.isArray(value)) {
      for (const v of value as unknown[]) {
        if (typeof v !== 'string') return 'field'
        if (!FIELD_VALUE.test(v)) return 'header-value'
      }
    } else {
      return 'field'
    }
  }
  return undefined
}

function varyProblem (vary: unknown): EntryProblem | undefined {
  if (!isRecord(vary)) return 'field'
  for (const name of Object.keys(vary)) {
    const value = vary[name]
    // A request field name, `cookie:` and a cookie name (a route's key cookies), or a language
    // alias's mark (cache/vary.ts).
    const field = name.startsWith('cookie:') ? name.slice(7) : name
    if ((!TOKEN.test(field) && name !== LANGUAGE_ALIAS) || name === '__proto__' || (value !== null && typeof value !== 'string')) return 'field'
  }
  return undefined
}

/**
 * The first problem of an entry read back for `url`, or undefined when it may be served.
 * Checks every field's type at run time (the value may come from JSON, or from code that
 * broke the types), so it takes `unknown` fields as they come. The body's seal is checked
 * by the store that recorded it (bodyProblem); here the body only has to be bytes.
 */
export function entryProblem (entry: CacheEntry, url: CacheKey): EntryProblem | undefined {
  const e = entry as unknown as Record<string, unknown>
  if (!isRecord(e)) return 'field'
  if (typeof e.url !== 'string') return 'field'
  if (e.url !== url) return 'url'
  if (!storedStatus(e.status)) return typeof e.status === 'number' ? 'status' : 'field'
  const headers = headersProblem(e.headers)
  if (headers !== undefined) return headers
  if (!(e.body instanceof Uint8Array)) return 'field'
  if (!inRange(e.requestTime) || !inRange(e.responseTime) || !inRange(e.initialAge) ||
    !inRange(e.freshness) || !inRange(e.staleWhileRevalidate) || !inRange(e.staleIfError) ||
    !inRange(e.invalidatedAt)) return 'field'
  const vary = varyProblem(e.vary)
  if (vary !== undefined) return vary
  if (!Array.isArray(e.tags) || !(e.tags as unknown[]).every((tag) => typeof tag === 'string')) return 'field'
  if (typeof e.mustRevalidate !== 'boolean' || typeof e.noCache !== 'boolean') return 'field'
  return undefined
}
