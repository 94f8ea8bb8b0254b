/**
 * Header field handling shared by the request and response paths.
 */
import type { HeaderMap } from './entry.ts'

/** RFC 9110 §7.6.1 hop-by-hop fields, never forwarded nor stored. */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization'
])

export type IncomingHeaders = Readonly<Record<string, string | readonly string[] | undefined>>

/** Fields named by Connection are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionListed (headers: IncomingHeaders): Set<string> {
  const c = headers.connection
  const out = new Set<string>()
  if (c === undefined) return out
  for (const part of (typeof c === 'string' ? c : c.join(',')).split(',')) {
    const name = part.trim().toLowerCase()
    if (name !== '') out.add(name)
  }
  return out
}

/** A copy without hop-by-hop fields and without the names in `drop`. */
export function withoutHopByHop (headers: IncomingHeaders, drop: ReadonlySet<string> = new Set()): HeaderMap {
  const listed = connectionListed(headers)
  const out: HeaderMap = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || listed.has(lower) || drop.has(lower)) continue
    out[lower] = typeof value === 'string' ? value : [...value]
  }
  return out
}

/** One header value as a single string (list fields joined with ", "). */
export function single (value: string | readonly string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  return typeof value === 'string' ? value : value.join(', ')
}

/** Fields of a stored response that a cache must not send downstream as stored. */
export const NOT_STORED = new Set(['set-cookie', 'age'])

/** Surrogate-key fields (Fastly's Surrogate-Key, Cloudflare's Cache-Tag). */
export const TAG_FIELDS = ['surrogate-key', 'cache-tag'] as const

/** Tags from Surrogate-Key (space separated) and Cache-Tag (comma separated), deduplicated, at most 1 KB each. */
export function parseTags (headers: IncomingHeaders, maxTagBytes = 1024, maxTotal = 16384): string[] {
  const tags = new Set<string>()
  const sk = single(headers['surrogate-key'])
  const ct = single(headers['cache-tag'])
  if ((sk?.length ?? 0) + (ct?.length ?? 0) > maxTotal) return []
  for (const t of sk?.split(/[ \t]+/) ?? []) if (t !== '' && Buffer.byteLength(t) <= maxTagBytes) tags.add(t)
  for (const t of ct?.split(',') ?? []) {
    const tag = t.trim()
    if (tag !== '' && Buffer.byteLength(tag) <= maxTagBytes) tags.add(tag)
  }
  return [...tags]
}
