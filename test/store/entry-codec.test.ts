// The codec lives in src/cache/ but is exercised here, beside the stores that use it.
import t from 'tap'
import { decodeEntry, encodeEntry, ENTRY_MAGIC } from '../../src/cache/entry-codec.ts'
import { ALL_BYTES, makeEntry, sameEntry } from './contract.ts'

const entry = makeEntry('http://a.example/x', { vary: { accept: null, 'accept-language': 'en' }, invalidatedAt: 42 })
const encoded = encodeEntry(entry)

await t.test('an encoded entry decodes to an equal entry', async (t) => {
  sameEntry(t, decodeEntry(encoded), entry)
  t.equal(encoded.subarray(0, 4).toString('latin1'), ENTRY_MAGIC)
  t.ok(encoded.subarray(encoded.length - 256).equals(ALL_BYTES), 'the body is last, raw')
})

await t.test('the decoded body is a view of the buffer, not a copy', async (t) => {
  const decoded = decodeEntry(encoded)
  t.equal(decoded?.body.buffer, encoded.buffer)
})

await t.test('invalidatedAt is the first meta member (the Redis soft purge relies on it)', async (t) => {
  t.match(encoded.toString('utf8', 8, 40), /^\{"invalidatedAt":42,/)
})

await t.test('malformed input decodes to null and never throws', async (t) => {
  const meta = (json: string): Buffer => {
    const m = Buffer.from(json)
    const head = Buffer.alloc(8)
    head.write(ENTRY_MAGIC, 'latin1')
    head.writeUInt32BE(m.length, 4)
    return Buffer.concat([head, m])
  }
  const metaOf = JSON.parse(encoded.toString('utf8', 8, 8 + encoded.readUInt32BE(4))) as Record<string, unknown>
  const without = (field: string) => meta(JSON.stringify({ ...metaOf, [field]: undefined }))
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['short header', encoded.subarray(0, 7)],
    ['wrong magic', Buffer.concat([Buffer.from('XGE\u0001'), encoded.subarray(4)])],
    ['another version', Buffer.concat([Buffer.from('CGE\u0002'), encoded.subarray(4)])],
    ['meta length past the end', encoded.subarray(0, 20)],
    ['bad JSON', meta('{"url":')],
    ['JSON not an object', meta('[1,2]')],
    ['JSON null', meta('null')],
    ['missing url', without('url')],
    ['missing tags', without('tags')],
    ['missing invalidatedAt', without('invalidatedAt')],
    ['header value not a string', meta(JSON.stringify({ ...metaOf, headers: { a: 1 } }))],
    ['header list with a number', meta(JSON.stringify({ ...metaOf, headers: { a: ['x', 2] } }))],
    ['status not an integer', meta(JSON.stringify({ ...metaOf, status: '200' }))],
    ['vary value not a string', meta(JSON.stringify({ ...metaOf, vary: { accept: 1 } }))],
    ['boolean as a number', meta(JSON.stringify({ ...metaOf, noCache: 0 }))]
  ]
  for (const [name, buf] of cases) {
    t.doesNotThrow(() => decodeEntry(buf), name)
    t.equal(decodeEntry(buf), null, name)
  }
  t.not(decodeEntry(meta(JSON.stringify(metaOf))), null, 'sanity: the hand-built buffer decodes when intact')
})
