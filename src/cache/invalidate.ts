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
  for (const field of ['location', 'content-location'] as const) {
    const value = single(responseHeaders[field])
    if (value === undefined) continue
    const key = sameOriginKey(value, target, ignore)
    if (key !== undefined) out.add(key)
  }
  return [...out]
}

/**
 * The key of a URI reference from a response (Location, Content-Location) resolved against
 * the request's key, normalized as request keys are; undefined when it names another origin
 * (§4.4: a cache must not act on another origin's URIs) or does not parse. cache/ does not
 * throw: a key WHATWG URL refuses (a host with a stray '%') resolves nothing.
 */
export function sameOriginKey (reference: string, target: CacheKey, ignore?: (name: string) => boolean): CacheKey | undefined {
  let base: URL
  let absolute: URL
  try {
    base = new URL(target)
    absolute = new URL(reference, base)
  } catch {
    return undefined
  }
  if (absolute.origin !== base.origin) return undefined
  const n = normalizeAbsoluteUrl(absolute.href, ignore)
  return n.ok ? n.key : undefined
}
