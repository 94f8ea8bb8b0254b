// The codec lives in src/cache/ but is exercised here, beside the stores that use it.
import t from 'tap'
import { crc32 } from 'node:zlib'
import { decodeEntry, encodeEntry, ENTRY_MAGIC, type DecodeResult } from '../../src/cache/entry-codec.ts'
import type { EntryProblem } from '../../src/cache/entry-check.ts'
import type { CacheEntry } from '../../src/cache/entry.ts'
import { ALL_BYTES, key, makeEntry, sameEntry } from './contract.ts'

const URL_A = key('http://a.example/x')
const entry = makeEntry(URL_A, { vary: { accept: null, 'accept-language': 'en' }, invalidatedAt: 42 })
const encoded = encodeEntry(entry)

function decoded (result: DecodeResult): CacheEntry | null {
  return result.ok ? result.entry : null
}

/** The meta of an encoded value, parsed. */
function metaOf (buf: Buffer): Record<string, unknown> {
  return JSON.parse(buf.toString('utf8', 8, 8 + buf.readUInt32BE(4))) as Record<string, unknown>
}

/** A value with this meta JSON (written as given) and body. */
function build (json: string, body: Buffer = Buffer.alloc(0), magic = ENTRY_MAGIC): Buffer {
  const m = Buffer.from(json)
  const head = Buffer.alloc(8)
  head.write(magic, 'latin1')
  head.writeUInt32BE(m.length, 4)
  return Buffer.concat([head, m, body])
}

/** The encoded entry with meta fields replaced (the body and its seal kept). */
function withMeta (fields: Record<string, unknown>): Buffer {
  return build(JSON.stringify({ ...metaOf(encoded), ...fields }), entry.body)
}

await t.test('an encoded entry decodes to an equal entry', async (t) => {
  sameEntry(t, decoded(decodeEntry(encoded, URL_A)), entry)
  t.equal(encoded.subarray(0, 4).toString('latin1'), ENTRY_MAGIC)
  t.equal(ENTRY_MAGIC, 'CGE\u0002', 'format version 2: the body seal was added')
  t.ok(encoded.subarray(encoded.length - 256).equals(ALL_BYTES), 'the body is last, raw')
})

await t.test('the decoded body is a view of the buffer, not a copy', async (t) => {
  t.equal(decoded(decodeEntry(encoded, URL_A))?.body.buffer, encoded.buffer)
})

await t.test('invalidatedAt is the first meta member (the Redis soft purge relies on it)', async (t) => {
  t.match(encoded.toString('utf8', 8, 40), /^\{"invalidatedAt":42,/)
})

await t.test('the body length and its CRC-32 are recorded in the meta at encode time', async (t) => {
  const meta = metaOf(encoded)
  t.equal(meta.bodyLength, 256)
  t.equal(meta.bodyCrc32, crc32(ALL_BYTES))
})

await t.test('a soft purge rewriting invalidatedAt in place keeps the entry valid', async (t) => {
  // What MARK_STALE_LUA does: replace the leading number, fix the meta length, keep the rest.
  const json = encoded.toString('utf8', 8, 8 + encoded.readUInt32BE(4)).replace('{"invalidatedAt":42,', '{"invalidatedAt":1767225600000,')
  const result = decodeEntry(build(json, entry.body), URL_A)
  t.equal(decoded(result)?.invalidatedAt, 1767225600000)
})

await t.test('every corrupted field decodes to its problem and never throws', async (t) => {
  const meta = metaOf(encoded)
  const cut = (n: number): Buffer => encoded.subarray(0, encoded.length - n)
  const flipped = Buffer.from(encoded)
  flipped.writeUInt8(flipped.readUInt8(flipped.length - 10) ^ 0x01, flipped.length - 10)
  const hugeMetaLength = Buffer.from(encoded)
  hugeMetaLength.writeUInt32BE(0xffffffff, 4)
  const cases: [string, Buffer, EntryProblem][] = [
    ['empty', Buffer.alloc(0), 'format'],
    ['short header', encoded.subarray(0, 7), 'format'],
    ['wrong magic', Buffer.concat([Buffer.from('XGE\u0002'), encoded.subarray(4)]), 'format'],
    ['version 1 (before the body seal)', Buffer.concat([Buffer.from('CGE\u0001'), encoded.subarray(4)]), 'version'],
    ['a later version', Buffer.concat([Buffer.from('CGE\u0003'), encoded.subarray(4)]), 'version'],
    ['meta length past the end', encoded.subarray(0, 20), 'format'],
    ['huge meta length', hugeMetaLength, 'format'],
    ['meta JSON malformed', build('{"url":'), 'format'],
    ['meta JSON not an object', build('[1,2]'), 'format'],
    ['meta JSON null', build('null'), 'format'],
    ['truncated body (one byte short)', cut(1), 'body-length'],
    ['truncated body (half)', cut(128), 'body-length'],
    ['body longer than recorded', Buffer.concat([encoded, Buffer.from('x')]), 'body-length'],
    ['body altered, same length', flipped, 'checksum'],
    ['checksum field altered', withMeta({ bodyCrc32: (Number(meta.bodyCrc32) + 1) % 2 ** 32 }), 'checksum'],
    ['checksum field missing', withMeta({ bodyCrc32: undefined }), 'field'],
    ['checksum not a 32-bit integer', withMeta({ bodyCrc32: 2 ** 40 }), 'field'],
    ['body length field altered', withMeta({ bodyLength: 300 }), 'body-length'],
    ['body length negative', withMeta({ bodyLength: -1 }), 'field'],
    ['url of another key', withMeta({ url: 'http://a.example/other' }), 'url'],
    ['missing url', withMeta({ url: undefined }), 'field'],
    ['missing tags', withMeta({ tags: undefined }), 'field'],
    ['missing invalidatedAt', withMeta({ invalidatedAt: undefined }), 'field'],
    ['status 99', withMeta({ status: 99 }), 'status'],
    ['status 1000 (Node throws on it)', withMeta({ status: 1000 }), 'status'],
    ['status 600', withMeta({ status: 600 }), 'status'],
    ['status 304 (never stored)', withMeta({ status: 304 }), 'status'],
    ['status 206 (never stored)', withMeta({ status: 206 }), 'status'],
    ['status not an integer', withMeta({ status: 200.5 }), 'status'],
    ['status a string', withMeta({ status: '200' }), 'field'],
    ['header value with CR LF', withMeta({ headers: { 'x-a': 'ok\r\nset-cookie: evil=1' } }), 'header-value'],
    ['header value with LF', withMeta({ headers: { 'x-a': 'a\nb' } }), 'header-value'],
    ['header value with NUL', withMeta({ headers: { 'x-a': 'a\u0000b' } }), 'header-value'],
    ['header value with another control character', withMeta({ headers: { 'x-a': 'a\u0007b' } }), 'header-value'],
    ['header value beyond latin1', withMeta({ headers: { 'x-a': 'snow \u2603' } }), 'header-value'],
    ['header list item with CR LF', withMeta({ headers: { 'set-cookie': ['a=1', 'b=2\r\nx: y'] } }), 'header-value'],
    ['header name with a space', withMeta({ headers: { 'x a': '1' } }), 'header-name'],
    ['header name with a colon', withMeta({ headers: { 'x:a': '1' } }), 'header-name'],
    ['header name empty', withMeta({ headers: { '': '1' } }), 'header-name'],
    ['header name with CR LF', withMeta({ headers: { 'x\r\ny': '1' } }), 'header-name'],
    ['header name __proto__', build(encoded.toString('utf8', 8, 8 + encoded.readUInt32BE(4)).replace('"headers":{', '"headers":{"__proto__":["x"],'), entry.body), 'header-name'],
    ['header value a number', withMeta({ headers: { a: 1 } }), 'field'],
    ['header list with a number', withMeta({ headers: { a: ['x', 2] } }), 'field'],
    ['headers an array', withMeta({ headers: ['a', 'b'] }), 'field'],
    ['vary value a number', withMeta({ vary: { accept: 1 } }), 'field'],
    ['vary name not a token', withMeta({ vary: { 'a b': null } }), 'field'],
    ['tags a string', withMeta({ tags: 'a,b' }), 'field'],
    ['tag a number', withMeta({ tags: ['a', 1] }), 'field'],
    ['boolean as a number', withMeta({ noCache: 0 }), 'field'],
    ['freshness negative', withMeta({ freshness: -1 }), 'field'],
    ['freshness beyond any date', withMeta({ freshness: 1e300 }), 'field'],
    ['responseTime a string', withMeta({ responseTime: '1767225600000' }), 'field'],
    ['initialAge null (what JSON makes of NaN)', withMeta({ initialAge: null }), 'field']
  ]
  for (const [name, buf, problem] of cases) {
    let result: DecodeResult | undefined
    t.doesNotThrow(() => { result = decodeEntry(buf, URL_A) }, name)
    t.strictSame(result, { ok: false, problem }, name)
  }
  t.ok(decodeEntry(withMeta({}), URL_A).ok, 'sanity: the hand-built buffer decodes when intact')
  t.ok(decodeEntry(withMeta({ status: 599, headers: { 'x-tab': 'a\tb', 'x-obs': '\u00e9\u00ff', 'x-list': [] } }), URL_A).ok, 'sanity: HTAB, obs-text and an empty list are field values')
})
