/**
 * Query parameters named like credentials (`?token=…`, `?api_key=…`) are replaced by REDACTED
 * in what the gateway writes for people to read: request log lines and /explain. The cache key
 * itself keeps them (two tokens may be two resources); only what is shown is redacted.
 */
import { globMatcher } from '../cache/key.ts'

export const REDACTED = 'REDACTED'

export type QueryRedactor = (url: string) => string

function decodeName (raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '))
  } catch {
    return raw
  }
}

/**
 * A function that redacts the values of the named query parameters in a URL, absolute or a
 * path. Names are matched after percent-decoding and lower-casing, so `%74oken` and `TOKEN`
 * are `token`; a fragment is kept as written.
 */
export function queryRedactor (names: readonly string[]): QueryRedactor {
  const secret = globMatcher(names.map((n) => n.toLowerCase()))
  return (url) => {
    const q = url.indexOf('?')
    if (q < 0 || names.length === 0) return url
    const hash = url.indexOf('#', q)
    const end = hash < 0 ? url.length : hash
    let changed = false
    const parts = url.slice(q + 1, end).split('&').map((part) => {
      const eq = part.indexOf('=')
      const name = eq < 0 ? part : part.slice(0, eq)
      if (!secret(decodeName(name).toLowerCase())) return part
      changed = true
      return `${name}=${REDACTED}`
    })
    return changed ? `${url.slice(0, q + 1)}${parts.join('&')}${url.slice(end)}` : url
  }
}

/** A redactor that follows a list that may change (a reload): rebuilt when the list is another one. */
export function followingRedactor (names: () => readonly string[]): QueryRedactor {
  let current: readonly string[] | undefined
  let redact: QueryRedactor = (url) => url
  return (url) => {
    const now = names()
    if (now !== current) {
      current = now
      redact = queryRedactor(now)
    }
    return redact(url)
  }
}
