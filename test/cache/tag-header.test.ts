import t from 'tap'
import { formatTagHeader, type TagHeader } from '../../src/cache/tag-header.ts'
import { ConfigError, parseConfig } from '../../src/config/load.ts'

const many = (n: number, prefix = 't'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

const rows: Array<{ name: string, header: TagHeader, tags: string[], expected: string | undefined }> = [
  { name: 'Fastly keys are space-separated', header: 'surrogate-key', tags: ['product-1', 'products'], expected: 'product-1 products' },
  { name: 'Cloudflare tags are comma-separated', header: 'cache-tag', tags: ['product-1', 'products'], expected: 'product-1,products' },
  { name: 'Akamai tags are comma-separated', header: 'edge-cache-tag', tags: ['product-1', 'products'], expected: 'product-1,products' },
  { name: 'no tags: no header', header: 'surrogate-key', tags: [], expected: undefined },
  { name: 'duplicates are written once', header: 'cache-tag', tags: ['a', 'b', 'a'], expected: 'a,b' },
  { name: 'a comma inside a Fastly key is kept (it is not Fastly\'s separator)', header: 'surrogate-key', tags: ['a,b', 'c'], expected: 'a,b c' },
  { name: 'a tag holding the comma separator is left out, not split into two tags (Cloudflare)', header: 'cache-tag', tags: ['a,b', 'c'], expected: 'c' },
  { name: 'a tag holding the comma separator is left out (Akamai)', header: 'edge-cache-tag', tags: ['a,b', 'c'], expected: 'c' },
  { name: 'a tag holding a space is left out of every format', header: 'cache-tag', tags: ['two words', 'c'], expected: 'c' },
  { name: 'a tag holding a space is left out of Surrogate-Key', header: 'surrogate-key', tags: ['two words', 'c'], expected: 'c' },
  { name: 'CR, LF, tab and NUL never reach a header', header: 'surrogate-key', tags: ['a\r\nSet-Cookie: x=1', 'b\tc', 'd\u0000', 'ok'], expected: 'ok' },
  { name: 'non-ASCII tags are left out', header: 'cache-tag', tags: ['caf\u00e9', 'ok'], expected: 'ok' },
  { name: 'Akamai refuses ":" "@" "*" "{" in tags', header: 'edge-cache-tag', tags: ['product:1', 'a@b', 'a*', '{x}', 'ok'], expected: 'ok' },
  { name: 'Fastly and Cloudflare accept ":"', header: 'surrogate-key', tags: ['product:1'], expected: 'product:1' },
  { name: 'a Fastly key of 1,024 bytes is kept, one of 1,025 left out', header: 'surrogate-key', tags: ['k'.repeat(1024), 'x'.repeat(1025)], expected: 'k'.repeat(1024) },
  { name: 'an Akamai tag of 128 characters is kept, one of 129 left out', header: 'edge-cache-tag', tags: ['k'.repeat(128), 'x'.repeat(129)], expected: 'k'.repeat(128) },
  { name: 'Akamai takes the first 128 tags', header: 'edge-cache-tag', tags: many(200), expected: many(128).join(',') }
]

t.test('tags are written in each CDN\'s format and within its limits', async (t) => {
  for (const row of rows) t.equal(formatTagHeader(row.tags, row.header), row.expected, row.name)
})

t.test('the header never exceeds the CDN\'s size limit: tags are taken in order while they fit', async (t) => {
  const tags = many(40).map((tag) => tag.padEnd(1000, 'x'))
  for (const [header, limit] of [['surrogate-key', 16_384], ['cache-tag', 16_384], ['edge-cache-tag', 8192]] as const) {
    const value = formatTagHeader(header === 'edge-cache-tag' ? tags.map((tag) => tag.slice(0, 120)).concat(tags.map((tag) => 'y' + tag.slice(0, 120))) : tags, header) ?? ''
    t.ok(Buffer.byteLength(value) <= limit, `${header}: ${Buffer.byteLength(value)} bytes`)
    t.ok(Buffer.byteLength(value) > limit - 1100, `${header}: as many tags as fit`)
    t.ok(value.startsWith('t0'), `${header}: the first tags are kept`)
  }
})

t.test('routes take tagHeader surrogate-key, cache-tag or edge-cache-tag, and nothing else', async (t) => {
  const config = (value: string): string => `routes:\n  - origin: http://127.0.0.1:3000\n    tagHeader: ${value}\n`
  t.equal(parseConfig(config('cache-tag'), 'routes.yaml', {}).routes[0]?.tagHeader, 'cache-tag')
  t.equal(parseConfig('routes:\n  - origin: http://127.0.0.1:3000\n', 'routes.yaml', {}).routes[0]?.tagHeader, undefined, 'absent by default')
  try {
    parseConfig(config('Surrogate-Key'), 'routes.yaml', {})
    t.fail('accepted')
  } catch (err) {
    t.ok(err instanceof ConfigError)
    t.match((err as ConfigError).problems.join('\n'), /routes\[0\]\.tagHeader: expected one of surrogate-key, cache-tag, edge-cache-tag, got "Surrogate-Key"/)
  }
})
