/**
 * RFC 9211 Cache-Status: `cachegate; hit; ttl=12` or `cachegate; fwd=uri-miss; stored`.
 */

export type Forward = 'bypass' | 'method' | 'uri-miss' | 'vary-miss' | 'miss' | 'request' | 'stale' | 'partial'

export interface CacheStatus {
  hit?: boolean
  fwd?: Forward
  fwdStatus?: number
  /** Remaining freshness in seconds (negative when stale), §2.4. */
  ttl?: number
  stored?: boolean
  collapsed?: boolean
  detail?: string
}

export const CACHE_NAME = 'cachegate'

/**
 * RFC 8941 §3.3.4 token, else a quoted sf-string (§3.3.3). An sf-string holds printable ASCII
 * only, so anything else (non-ASCII, CR, LF) becomes '?': the field stays valid and no detail
 * can break the header.
 */
function item (value: string): string {
  if (/^[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*$/.test(value)) return value
  return `"${value.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&')}"`
}

export function formatCacheStatus (s: CacheStatus): string {
  let out = CACHE_NAME
  if (s.hit === true) out += '; hit'
  if (s.fwd !== undefined) out += `; fwd=${s.fwd}`
  if (s.fwdStatus !== undefined) out += `; fwd-status=${s.fwdStatus}`
  // ttl is an sf-integer (RFC 9211 §2.4): a non-finite value would make the field invalid.
  if (s.ttl !== undefined && Number.isFinite(s.ttl)) out += `; ttl=${Math.floor(s.ttl)}`
  if (s.stored === true) out += '; stored'
  if (s.collapsed === true) out += '; collapsed'
  if (s.detail !== undefined && s.detail !== '') out += `; detail=${item(s.detail)}`
  return out
}
