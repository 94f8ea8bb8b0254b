import t from 'tap'
import {
  clientNotModified,
  hasValidators,
  merge304Headers,
  NOT_MODIFIED_FIELDS,
  notModifiedMatches,
  validatorHeaders,
  weakCompare
} from '../../src/cache/conditional.ts'
import type { HeaderMap } from '../../src/cache/entry.ts'
import type { IncomingHeaders } from '../../src/cache/headers.ts'

const LM = 'Sun, 06 Nov 1994 08:49:37 GMT'
const LATER = 'Mon, 07 Nov 1994 08:49:37 GMT'
const EARLIER = 'Sat, 05 Nov 1994 08:49:37 GMT'

t.test('validatorHeaders builds a conditional request from stored validators (RFC 9111 §4.3.1)', async (t) => {
  const rows: Array<[string, HeaderMap, Record<string, string>, boolean]> = [
    ['§4.3.1 an ETag becomes If-None-Match', { etag: '"a"' }, { 'if-none-match': '"a"' }, true],
    ['§4.3.1 a weak ETag is sent as is', { etag: 'W/"a"' }, { 'if-none-match': 'W/"a"' }, true],
    ['§4.3.1 Last-Modified becomes If-Modified-Since', { 'last-modified': LM }, { 'if-modified-since': LM }, true],
    ['§4.3.1 both validators are sent', { etag: '"a"', 'last-modified': LM }, { 'if-none-match': '"a"', 'if-modified-since': LM }, true],
    ['§4.3.1 no validators, no conditional headers', { 'content-type': 'text/plain' }, {}, false]
  ]
  for (const [name, headers, expected, has] of rows) {
    t.same(validatorHeaders({ headers }), expected, name)
    t.equal(hasValidators({ headers }), has, `${name} (hasValidators)`)
  }
})

t.test('merge304Headers updates stored headers from a 304 (RFC 9111 §3.2, §4.3.4)', async (t) => {
  const stored: HeaderMap = {
    'content-type': 'text/html',
    'content-length': '1234',
    'content-encoding': 'gzip',
    'content-range': 'bytes 0-9/10',
    etag: '"v1"',
    'cache-control': 'max-age=10',
    date: EARLIER,
    'x-kept': 'yes',
    'content-md5': 'rL0Y20zC+Fzt72VPzMSk2A==',
    'content-digest': 'sha-256=:a:'
  }
  const rows: Array<{ name: string, notModified: IncomingHeaders, expected: Partial<HeaderMap> & Record<string, string | string[] | undefined> }> = [
    { name: '§4.3.4 fields in the 304 replace stored ones', notModified: { 'cache-control': 'max-age=60', date: LATER, etag: '"v1"' }, expected: { 'cache-control': 'max-age=60', date: LATER } },
    { name: '§4.3.4 fields absent from the 304 are kept', notModified: { date: LATER }, expected: { 'x-kept': 'yes', 'content-type': 'text/html' } },
    { name: '§4.3.4 new fields are added', notModified: { expires: LATER }, expected: { expires: LATER } },
    { name: '§3.2 Content-Length is kept (it describes the stored body)', notModified: { 'content-length': '0' }, expected: { 'content-length': '1234' } },
    { name: '§3.2 Content-Encoding is kept (it describes the stored body)', notModified: { 'content-encoding': 'br' }, expected: { 'content-encoding': 'gzip' } },
    { name: '§3.2 Content-Range is kept (it describes the stored body)', notModified: { 'content-range': 'bytes 0-0/1' }, expected: { 'content-range': 'bytes 0-9/10' } },
    { name: '§3.2 Content-MD5 is kept (a digest of the stored body)', notModified: { 'content-md5': 'N7UdGUp1E+RbVvZSTy1R8g==' }, expected: { 'content-md5': 'rL0Y20zC+Fzt72VPzMSk2A==' } },
    { name: '§3.2 Content-Digest is kept (a digest of the stored body)', notModified: { 'content-digest': 'sha-256=:b:' }, expected: { 'content-digest': 'sha-256=:a:' } },
    { name: '§3.2 / §3.1 hop-by-hop fields of the 304 are not merged', notModified: { connection: 'keep-alive', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked' }, expected: { connection: undefined, 'keep-alive': undefined, 'transfer-encoding': undefined } },
    { name: '§3.2 / §3.1 fields named by the 304\'s Connection are not merged', notModified: { connection: 'X-Hop', 'x-hop': '1', 'x-new': '2' }, expected: { 'x-hop': undefined, 'x-new': '2' } },
    { name: '§4.3.4 names are merged lower-case', notModified: { 'Cache-Control': 'no-cache' }, expected: { 'cache-control': 'no-cache' } },
    { name: '§4.3.4 a list field replaces all stored instances', notModified: { link: ['<a>', '<b>'] }, expected: { link: ['<a>', '<b>'] } }
  ]
  for (const row of rows) {
    const merged = merge304Headers(stored, row.notModified)
    const picked = Object.fromEntries(Object.keys(row.expected).map((k) => [k, merged[k]]))
    t.same(picked, row.expected, row.name)
  }
  merge304Headers(stored, { 'cache-control': 'max-age=60' })
  t.equal(stored['cache-control'], 'max-age=10', 'the stored map is not modified')

  const received = Date.UTC(1994, 10, 8, 0, 0, 0)
  const dateRows: Array<[string, IncomingHeaders, number | undefined, string | undefined]> = [
    ['§4.3.4 the 304\'s Date replaces the stored Date', { date: LATER }, received, LATER],
    ['RFC 9110 §6.6.1 a 304 without Date gets the time it was received', {}, received, 'Tue, 08 Nov 1994 00:00:00 GMT'],
    ['RFC 9110 §6.6.1 a 304 with an invalid Date gets the time it was received', { date: 'soon' }, received, 'Tue, 08 Nov 1994 00:00:00 GMT'],
    ['§4.2.3 without a receive time, a Date-less 304 drops the stored Date (not the original response\'s age)', {}, undefined, undefined]
  ]
  for (const [name, notModified, at, expected] of dateRows) t.equal(merge304Headers(stored, notModified, at).date, expected, name)
})

t.test('notModifiedMatches tells whether a 304 selects the stored response (RFC 9111 §4.3.4)', async (t) => {
  const rows: Array<[string, HeaderMap, IncomingHeaders, boolean]> = [
    ['§4.3.4 the same strong ETag selects it', { etag: '"a"' }, { etag: '"a"' }, true],
    ['deliberately, another ETag in the 304 still selects it: the stored ETag was the If-None-Match the 304 answered (the 304\'s ETag is not merged)', { etag: '"a"' }, { etag: '"b"' }, true],
    ['§4.3.4 a weak 304 ETag matching a strong stored one selects it', { etag: '"a"' }, { etag: 'W/"a"' }, true],
    ['§4.3.4 deliberately, a strong 304 ETag selects the weak stored form (compressing origins)', { etag: 'W/"a"' }, { etag: '"a"' }, true],
    ['§4.3.4 without ETags, the same Last-Modified selects it', { 'last-modified': LM }, { 'last-modified': LM }, true],
    ['§4.3.4 without ETags, another Last-Modified does not', { 'last-modified': LM }, { 'last-modified': LATER }, false],
    ['§4.3.4 ETags decide before Last-Modified', { etag: '"a"', 'last-modified': LM }, { etag: '"a"', 'last-modified': LATER }, true],
    ['§4.3.4 deliberately, a 304 without validators selects the validated entry even if it has an ETag', { etag: '"a"' }, {}, true],
    ['§4.3.4 a 304 with only an ETag and a stored entry with only Last-Modified: nothing disagrees', { 'last-modified': LM }, { etag: '"a"' }, true],
    ['§4.3.4 no validators on either side selects it', {}, {}, true]
  ]
  for (const [name, stored, notModified, expected] of rows) t.equal(notModifiedMatches(stored, notModified), expected, name)
})

t.test('weakCompare follows RFC 9110 §8.8.3.2', async (t) => {
  const rows: Array<[string, string, boolean]> = [
    ['"1"', '"1"', true],
    ['W/"1"', 'W/"1"', true],
    ['W/"1"', '"1"', true],
    ['"1"', 'W/"1"', true],
    ['W/"1"', 'W/"2"', false],
    ['"1"', '"2"', false]
  ]
  for (const [a, b, expected] of rows) t.equal(weakCompare(a, b), expected, `§8.8.3.2 ${a} vs ${b}`)
})

t.test('clientNotModified answers a client\'s conditional GET from the stored response (RFC 9110 §13)', async (t) => {
  const rows: Array<[string, HeaderMap, IncomingHeaders, boolean]> = [
    ['§13.1.2 If-None-Match with the stored ETag', { etag: '"a"' }, { 'if-none-match': '"a"' }, true],
    ['§13.1.2 If-None-Match with another ETag', { etag: '"a"' }, { 'if-none-match': '"b"' }, false],
    ['§13.1.2 If-None-Match list containing the ETag', { etag: '"a"' }, { 'if-none-match': '"x", "a", "y"' }, true],
    ['§13.1.2 If-None-Match list as several lines', { etag: '"a"' }, { 'if-none-match': ['"x"', '"a"'] }, true],
    ['§13.1.2 If-None-Match compares weakly (weak request tag)', { etag: '"a"' }, { 'if-none-match': 'W/"a"' }, true],
    ['§13.1.2 If-None-Match compares weakly (weak stored tag)', { etag: 'W/"a"' }, { 'if-none-match': '"a"' }, true],
    ['§13.1.2 a comma inside an entity-tag does not split it', { etag: '"a,b"' }, { 'if-none-match': '"a,b"' }, true],
    ['§13.1.2 a comma inside an entity-tag does not match its halves', { etag: '"a"' }, { 'if-none-match': '"a,b"' }, false],
    ['§13.1.2 If-None-Match: * matches any stored representation', { etag: '"a"' }, { 'if-none-match': '*' }, true],
    ['§13.1.2 If-None-Match: * matches even without a stored ETag', {}, { 'if-none-match': ' * ' }, true],
    ['§13.1.2 If-None-Match without a stored ETag does not match', { 'last-modified': LM }, { 'if-none-match': '"a"' }, false],
    ['§13.1.3 If-None-Match wins over If-Modified-Since (mismatch)', { etag: '"a"', 'last-modified': LM }, { 'if-none-match': '"b"', 'if-modified-since': LATER }, false],
    ['§13.1.3 If-None-Match wins over If-Modified-Since (match)', { etag: '"a"', 'last-modified': LM }, { 'if-none-match': '"a"', 'if-modified-since': EARLIER }, true],
    ['§13.1.3 If-Modified-Since equal to Last-Modified', { 'last-modified': LM }, { 'if-modified-since': LM }, true],
    ['§13.1.3 If-Modified-Since after Last-Modified', { 'last-modified': LM }, { 'if-modified-since': LATER }, true],
    ['§13.1.3 If-Modified-Since before Last-Modified', { 'last-modified': LM }, { 'if-modified-since': EARLIER }, false],
    ['RFC 9111 §4.3.2 without Last-Modified, Date stands in', { date: LM }, { 'if-modified-since': LATER }, true],
    ['RFC 9111 §4.3.2 without Last-Modified, a later Date is modified', { date: LATER }, { 'if-modified-since': LM }, false],
    ['RFC 9111 §4.3.2 Last-Modified wins over Date', { 'last-modified': LATER, date: EARLIER }, { 'if-modified-since': LM }, false],
    ['§13.1.3 no Last-Modified and no Date: not modified cannot be shown', {}, { 'if-modified-since': LATER }, false],
    ['§13.1.3 an invalid If-Modified-Since is ignored', { 'last-modified': LM }, { 'if-modified-since': 'yesterday' }, false],
    ['§13.1.3 an If-Modified-Since of two dates is ignored', { 'last-modified': LM }, { 'if-modified-since': [LATER, LATER] }, false],
    ['§13.2.2 no conditional header, no 304', { etag: '"a"', 'last-modified': LM }, {}, false]
  ]
  for (const [name, stored, request, expected] of rows) t.equal(clientNotModified(stored, request), expected, name)
})

t.test('NOT_MODIFIED_FIELDS lists what a 304 carries (RFC 9110 §15.4.5)', async (t) => {
  for (const f of ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']) t.ok(NOT_MODIFIED_FIELDS.includes(f), `§15.4.5 ${f}`)
})

t.test('merge304Headers keeps the stored ETag: the 304 answered an If-None-Match with it', async (t) => {
  const merged = merge304Headers({ etag: '"a"', 'x-version': '1' }, { etag: '"b"', 'x-version': '2', date: 'Thu, 01 Jan 2026 00:00:00 GMT' })
  t.equal(merged.etag, '"a"')
  t.equal(merged['x-version'], '2', 'the other fields are updated')
  t.equal(merge304Headers({ 'last-modified': 'Thu, 01 Jan 2026 00:00:00 GMT' }, { etag: '"b"' }).etag, '"b"', 'an entry without an ETag takes one')
})
