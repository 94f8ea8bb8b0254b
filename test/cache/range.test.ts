import t from 'tap'
import type { HeaderMap } from '../../src/cache/entry.ts'
import type { IncomingHeaders } from '../../src/cache/headers.ts'
import { decideRange, type RangeDecision } from '../../src/cache/range.ts'

const LM = 'Sun, 06 Nov 1994 08:49:37 GMT'
const LM_PLUS_1S = 'Sun, 06 Nov 1994 08:49:38 GMT'
const LATER = 'Mon, 07 Nov 1994 08:49:37 GMT'
const stored: HeaderMap = { etag: '"v1"', 'last-modified': LM, date: LATER }
const SIZE = 100

t.test('decideRange serves one byte range from a stored 200 (RFC 9110 §14)', async (t) => {
  const rows: Array<{ name: string, request: IncomingHeaders, stored?: HeaderMap, size?: number, expected: RangeDecision }> = [
    { name: '§14.2 no Range: the full representation', request: {}, expected: { kind: 'full' } },
    { name: '§14.1.2 bytes=0-9 is the first ten bytes', request: { range: 'bytes=0-9' }, expected: { kind: 'partial', start: 0, end: 9 } },
    { name: '§14.1.2 bytes=5- is from byte 5 to the end', request: { range: 'bytes=5-' }, expected: { kind: 'partial', start: 5, end: 99 } },
    { name: '§14.1.2 bytes=-3 is the last three bytes', request: { range: 'bytes=-3' }, expected: { kind: 'partial', start: 97, end: 99 } },
    { name: '§14.1.2 a suffix longer than the body is the whole body', request: { range: 'bytes=-500' }, expected: { kind: 'partial', start: 0, end: 99 } },
    { name: '§14.1.2 a last-pos beyond the size is clamped to the end', request: { range: 'bytes=90-999' }, expected: { kind: 'partial', start: 90, end: 99 } },
    { name: '§14.1.2 a single byte', request: { range: 'bytes=99-99' }, expected: { kind: 'partial', start: 99, end: 99 } },
    { name: '§14.1.3 a first-pos at the size is unsatisfiable', request: { range: 'bytes=100-' }, expected: { kind: 'unsatisfiable' } },
    { name: '§14.1.3 a first-pos beyond the size is unsatisfiable', request: { range: 'bytes=200-300' }, expected: { kind: 'unsatisfiable' } },
    { name: '§14.1.3 a suffix of 0 is unsatisfiable', request: { range: 'bytes=-0' }, expected: { kind: 'unsatisfiable' } },
    { name: '§14.1.3 any range of an empty body is unsatisfiable', request: { range: 'bytes=0-' }, size: 0, expected: { kind: 'unsatisfiable' } },
    { name: '§14.1.3 a suffix of an empty body is unsatisfiable', request: { range: 'bytes=-5' }, size: 0, expected: { kind: 'unsatisfiable' } },
    { name: '§14.2 several ranges are answered with the full representation', request: { range: 'bytes=0-1,5-6' }, expected: { kind: 'full' } },
    { name: '§14.1.1 last-pos before first-pos is invalid: full', request: { range: 'bytes=9-5' }, expected: { kind: 'full' } },
    { name: '§14.1.1 "bytes=-" is invalid: full', request: { range: 'bytes=-' }, expected: { kind: 'full' } },
    { name: '§14.2 another unit is ignored: full', request: { range: 'items=0-9' }, expected: { kind: 'full' } },
    { name: '§14.1.1 a negative number is malformed: full', request: { range: 'bytes=-5-9' }, expected: { kind: 'full' } },
    { name: '§14.1.1 a non-number is malformed: full', request: { range: 'bytes=a-b' }, expected: { kind: 'full' } },
    { name: '§14.1 the unit is case-insensitive', request: { range: 'Bytes=0-0' }, expected: { kind: 'partial', start: 0, end: 0 } },
    { name: '§13.1.5 If-Range with the stored strong ETag applies the range', request: { range: 'bytes=0-9', 'if-range': '"v1"' }, expected: { kind: 'partial', start: 0, end: 9 } },
    { name: '§13.1.5 If-Range with another ETag sends the full representation', request: { range: 'bytes=0-9', 'if-range': '"v2"' }, expected: { kind: 'full' } },
    { name: '§13.1.5 If-Range with a weak ETag never matches', request: { range: 'bytes=0-9', 'if-range': 'W/"v1"' }, expected: { kind: 'full' } },
    { name: '§13.1.5 If-Range does not match a weak stored ETag', request: { range: 'bytes=0-9', 'if-range': '"v1"' }, stored: { etag: 'W/"v1"' }, expected: { kind: 'full' } },
    { name: '§13.1.5 If-Range with an ETag when none is stored', request: { range: 'bytes=0-9', 'if-range': '"v1"' }, stored: { 'last-modified': LM }, expected: { kind: 'full' } },
    { name: '§13.1.5 If-Range with the exact Last-Modified (strong: Date a day later) applies the range', request: { range: 'bytes=0-9', 'if-range': LM }, expected: { kind: 'partial', start: 0, end: 9 } },
    { name: '§13.1.5 If-Range with another date sends the full representation', request: { range: 'bytes=0-9', 'if-range': LATER }, expected: { kind: 'full' } },
    { name: '§8.8.2.2 If-Range with a Last-Modified equal to Date (weak) sends the full representation', request: { range: 'bytes=0-9', 'if-range': LM }, stored: { 'last-modified': LM, date: LM }, expected: { kind: 'full' } },
    { name: '§8.8.2.2 a Last-Modified one second before Date is strong', request: { range: 'bytes=0-9', 'if-range': LM }, stored: { 'last-modified': LM, date: LM_PLUS_1S }, expected: { kind: 'partial', start: 0, end: 9 } },
    { name: '§8.8.2.2 without a stored Date, Last-Modified is weak', request: { range: 'bytes=0-9', 'if-range': LM }, stored: { 'last-modified': LM }, expected: { kind: 'full' } },
    { name: '§13.1.5 an invalid If-Range date sends the full representation', request: { range: 'bytes=0-9', 'if-range': 'yesterday' }, expected: { kind: 'full' } },
    { name: '§13.1.5 If-Range without Range changes nothing', request: { 'if-range': '"v2"' }, expected: { kind: 'full' } }
  ]
  for (const row of rows) t.same(decideRange(row.request, row.stored ?? stored, row.size ?? SIZE), row.expected, row.name)
})
