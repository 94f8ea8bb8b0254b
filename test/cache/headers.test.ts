import t from 'tap'
import { HOP_BY_HOP, NOT_STORED, parseTags, single, TAG_FIELDS, withoutHopByHop } from '../../src/cache/headers.ts'

t.test('withoutHopByHop drops fields that are not forwarded nor stored (RFC 9110 §7.6.1)', async (t) => {
  const rows: Array<{ name: string, headers: Record<string, string | string[] | undefined>, drop?: Set<string>, expected: Record<string, string | string[]> }> = [
    {
      name: '§7.6.1 the hop-by-hop fields are dropped',
      headers: Object.fromEntries([...HOP_BY_HOP].map((h) => [h, 'x']).concat([['content-type', 'text/plain']])),
      expected: { 'content-type': 'text/plain' }
    },
    {
      name: '§7.6.1 fields named by Connection are dropped too',
      headers: { connection: 'close, X-Secret', 'x-secret': '1', 'x-kept': '2' },
      expected: { 'x-kept': '2' }
    },
    {
      name: '§7.6.1 Connection as several lines',
      headers: { connection: ['x-a', 'X-B'], 'x-a': '1', 'x-b': '2', etag: '"e"' },
      expected: { etag: '"e"' }
    },
    {
      name: 'the names in drop are dropped',
      headers: { 'set-cookie': ['a=1'], age: '3', 'content-length': '4' },
      drop: NOT_STORED,
      expected: { 'content-length': '4' }
    },
    {
      name: 'names are lower-cased and undefined values skipped',
      headers: { 'Content-Type': 'text/html', 'x-none': undefined },
      expected: { 'content-type': 'text/html' }
    },
    {
      name: 'array values are copied',
      headers: { link: ['<a>', '<b>'] },
      expected: { link: ['<a>', '<b>'] }
    }
  ]
  for (const row of rows) t.same(withoutHopByHop(row.headers, row.drop), row.expected, row.name)

  const input = { link: ['<a>'] }
  const out = withoutHopByHop(input)
  ;(out.link as string[]).push('<b>')
  t.same(input.link, ['<a>'], 'the copy does not share arrays with its input')
})

t.test('single joins list fields with ", "', async (t) => {
  t.equal(single(undefined), undefined)
  t.equal(single('a'), 'a')
  t.equal(single(['a', 'b']), 'a, b')
  t.equal(single([]), '')
})

t.test('NOT_STORED names Set-Cookie and Age', async (t) => {
  t.same([...NOT_STORED].sort(), ['age', 'set-cookie'])
})

t.test('parseTags reads Surrogate-Key and Cache-Tag', async (t) => {
  t.same(TAG_FIELDS, ['surrogate-key', 'cache-tag'])
  const rows: Array<{ name: string, headers: Record<string, string | string[]>, expected: string[] }> = [
    { name: 'no tag fields, no tags', headers: {}, expected: [] },
    { name: 'Surrogate-Key is space separated', headers: { 'surrogate-key': ' a  b\tc ' }, expected: ['a', 'b', 'c'] },
    { name: 'Cache-Tag is comma separated and trimmed', headers: { 'cache-tag': 'a, b ,c,,' }, expected: ['a', 'b', 'c'] },
    { name: 'both fields are read and deduplicated', headers: { 'surrogate-key': 'a b', 'cache-tag': 'b,c' }, expected: ['a', 'b', 'c'] },
    { name: 'Cache-Tag keeps spaces inside a tag', headers: { 'cache-tag': 'product 1' }, expected: ['product 1'] },
    { name: 'tags are case-sensitive', headers: { 'surrogate-key': 'A a' }, expected: ['A', 'a'] },
    { name: 'a tag over 1 KB is skipped', headers: { 'surrogate-key': `${'x'.repeat(1025)} ok` }, expected: ['ok'] },
    { name: 'a tag of exactly 1 KB is kept', headers: { 'cache-tag': 'y'.repeat(1024) }, expected: ['y'.repeat(1024)] },
    { name: 'the byte length counts, not the characters', headers: { 'cache-tag': `${'é'.repeat(513)},ok` }, expected: ['ok'] },
    { name: 'over 16 KB of tag fields yields no tags', headers: { 'surrogate-key': 'a '.repeat(8193) }, expected: [] }
  ]
  for (const row of rows) t.same(parseTags(row.headers), row.expected, row.name)
})
