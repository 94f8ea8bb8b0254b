/**
 * Range requests answered from a stored full 200 (RFC 9110 §14). A single byte range is
 * served as 206; several ranges, or anything unparseable, are answered with the full
 * representation, which §14.2 allows.
 */
import type { HeaderMap } from './entry.ts'
import { httpDate } from './freshness.ts'
import type { IncomingHeaders } from './headers.ts'
import { single } from './headers.ts'

export type RangeDecision =
  | { kind: 'full' }
  | { kind: 'partial', start: number, end: number }
  | { kind: 'unsatisfiable' }

export function decideRange (request: IncomingHeaders, stored: HeaderMap, size: number): RangeDecision {
  const range = single(request.range)
  if (range === undefined) return { kind: 'full' }
  // §13.1.5 If-Range: the range applies only when the validator matches exactly (strong).
  const ifRange = single(request['if-range'])
  if (ifRange !== undefined && !ifRangeMatches(ifRange.trim(), stored)) return { kind: 'full' }
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(range)
  if (m === null) return { kind: 'full' }
  const [, first = '', last = ''] = m
  if (first === '' && last === '') return { kind: 'full' }
  if (first === '') {
    // suffix range: the last N bytes
    const n = Number(last)
    if (n === 0) return { kind: 'unsatisfiable' }
    return size === 0 ? { kind: 'unsatisfiable' } : { kind: 'partial', start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (last !== '' && Number(last) < start) return { kind: 'full' }
  if (start >= size) return { kind: 'unsatisfiable' }
  return { kind: 'partial', start, end }
}

function ifRangeMatches (ifRange: string, stored: HeaderMap): boolean {
  if (ifRange.startsWith('"') || ifRange.startsWith('W/')) {
    const etag = single(stored.etag)
    // strong comparison: weak tags never match
    return etag !== undefined && !ifRange.startsWith('W/') && !etag.startsWith('W/') && etag === ifRange
  }
  // §13.1.5: a date must exactly match Last-Modified and be a strong validator. §8.8.2.2: for a
  // cache that means the stored response has a Date at least one second after Last-Modified.
  const date = httpDate(ifRange)
  const lm = httpDate(stored['last-modified'])
  const served = httpDate(stored.date)
  return date !== undefined && lm !== undefined && served !== undefined && date === lm && served - lm >= 1000
}
