/**
 * The Redis key layout (documented in ./README.md). Pure string functions, so tests and
 * tools can compute the keys the store writes.
 *
 * Every key is `${prefix}{<hash tag>}:<suffix>`. The prefix must not contain braces, so the
 * first `{…}` of a key is always the hash tag chosen here, and keys that must be touched
 * together (by one MGET or one Lua script) share one Cluster slot.
 */
import { createHash } from 'node:crypto'
import type { CacheKey, VariantId } from '../cache/key.ts'
import { BoundedMap } from '../bounded-map.ts'

/** Throws when `prefix` could break the hash-tag scheme. */
export function assertKeyPrefix (prefix: string): void {
  if (prefix.includes('{') || prefix.includes('}')) {
    throw new TypeError(`Redis key prefix must not contain "{" or "}": ${JSON.stringify(prefix)}`)
  }
}

/** Recently hashed URLs: a hit costs one Map lookup instead of a SHA-1 (bounded in entries and bytes). */
const hashes = new BoundedMap<string, string>({ maxEntries: 50_000, maxBytes: 32 * 1024 * 1024 })

/** Short stable hash of a URL: the first 16 characters of its SHA-1 in base64url (96 bits). */
export function urlHash (url: CacheKey): string {
  const known = hashes.peek(url)
  if (known !== undefined) return known
  const hash = createHash('sha1').update(url).digest('base64url').slice(0, 16)
  hashes.set(url, hash)
  return hash
}

export interface UrlKeys {
  /** String: JSON array of the URL's Vary names, sorted. */
  vary: string
  /** Sorted set: variant ids scored by store order. */
  variants: string
  /** Entry keys are `${entryPrefix}${variant}` (the Lua scripts derive them from `variants`). */
  entryPrefix: string
  /** String: one encoded entry (src/cache/entry-codec.ts). */
  entry: (variant: VariantId) => string
}

export function urlKeys (prefix: string, url: CacheKey): UrlKeys {
  const base = `${prefix}{${urlHash(url)}}:`
  const entryPrefix = `${base}e:`
  return {
    vary: `${base}v`,
    variants: `${base}vs`,
    entryPrefix,
    entry: (variant) => entryPrefix + variant
  }
}

/**
 * An index is a pair of sorted sets in one slot, holding the same members:
 * `members` with every score 0 (so ZRANGEBYLEX pages and serves prefixes) and
 * `expiry` scored by the time the member's newest entry expires (so stale members are
 * pruned with a score range, never a scan).
 */
export interface IndexKeys {
  members: string
  expiry: string
}

/** Keeps the hash tag well-formed and non-empty whatever the name holds. */
function escapeTag (name: string): string {
  return name.replace(/[%{}]/g, (c) => (c === '%' ? '%25' : c === '{' ? '%7B' : '%7D'))
}

function indexKeys (prefix: string, tag: string): IndexKeys {
  return { members: `${prefix}{${tag}}:m`, expiry: `${prefix}{${tag}}:x` }
}

/** URLs stored with a surrogate key. */
export function tagIndexKeys (prefix: string, tag: string): IndexKeys {
  return indexKeys(prefix, `tag:${escapeTag(tag)}`)
}

/** URLs of one origin (scheme://host[:port]). */
export function originIndexKeys (prefix: string, origin: string): IndexKeys {
  return indexKeys(prefix, `origin:${escapeTag(origin)}`)
}

/** Every origin with stored URLs. */
export function originsIndexKeys (prefix: string): IndexKeys {
  return indexKeys(prefix, 'origins')
}
