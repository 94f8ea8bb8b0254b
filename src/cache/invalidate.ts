/**
 * RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and
 * the URIs in Location and Content-Location when they share its origin.
 */
import type { IncomingHeaders } from './headers.ts'
import { single } from './headers.ts'
import { normalizeAbsoluteUrl, type CacheKey } from './key.ts'

// RFC 9110 §9.2.1, and QUERY (draft-ietf-httpbis-safe-method-w-body), which is safe too.
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'QUERY'])

export function isUnsafe (method: string): boolean {
  return !SAFE.has(method)
}

/** Keys to invalidate after `method` got `status`; empty for safe methods and errors. */
export function invalidationTargets (
  method: string,
  status: number,
  target: CacheKey,
  responseHeaders: IncomingHeaders,
  ignore?: (name: string) => boolean
): CacheKey[] {
  if (!isUnsafe(method) || status < 200 || status >= 400) return []
  const out = new Set<CacheKey>([target])
  // cache/ does not throw: a key WHATWG URL refuses (a host with a stray '%') still invalidates itself.
  let origin: string
  try {
    origin = new URL(target).origin
  } catch {
    return [target]
  }
  for (const field of ['location', 'content-location'] as const) {
    const value = single(responseHeaders[field])
    if (value === undefined) continue
    let absolute: URL
    try {
      absolute = new URL(value, target)
    } catch {
      continue
    }
    if (absolute.origin !== origin) continue
    const n = normalizeAbsoluteUrl(absolute.href, ignore)
    if (n.ok) out.add(n.key)
  }
  return [...out]
}
