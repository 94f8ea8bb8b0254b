import t from 'tap'
import { parsePayload, payloadFields, webhookPurge } from '../../src/invalidation/webhooks/payload.ts'

t.test('payloads parse as JSON, with integers beyond 2^53 kept digit for digit', async (t) => {
  const rows: Array<[string, unknown]> = [
    ['{"id":788032119674292922}', { id: '788032119674292922' }],
    ['{"id":-788032119674292922}', { id: '-788032119674292922' }],
    ['{"id":9007199254740991}', { id: 9007199254740991 }],
    ['{"n":1.5e300,"f":12345678901234567890.5}', { n: 1.5e300, f: Number('12345678901234567890.5') }],
    ['{"s":"12345678901234567890","q":"a \\" 98765432109876543210"}', { s: '12345678901234567890', q: 'a " 98765432109876543210' }],
    ['[1, 98765432109876543210, {"k\\\\":1}]', [1, '98765432109876543210', { 'k\\': 1 }]],
    ['98765432109876543210', '98765432109876543210']
  ]
  for (const [text, expected] of rows) t.same(parsePayload(text), expected, text)
  for (const bad of ['{"id": 1,', '{"a":"unterminated}', '', '{"n": 12345678901234567890x}']) {
    t.throws(() => parsePayload(bad), SyntaxError, `malformed: ${JSON.stringify(bad)}`)
  }
})

t.test('config paths read own properties only: __proto__ and constructor read nothing', async (t) => {
  const payload = parsePayload('{"__proto__":{"polluted":"yes"},"a":{"b":[{"c":"x"}]}}')
  const fields = payloadFields({ kind: 'generic', fields: { p: '$.__proto__.polluted', c: '$.constructor', ok: '$.a.b[0].c', none: '$.a.b[5].c' } }, payload, {})
  t.same(fields.get('c'), [])
  t.same(fields.get('ok'), ['x'])
  t.same(fields.get('none'), [])
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing polluted')
})

t.test('a template over list values is filled with each combination, at most 256 items per list', async (t) => {
  const fields = new Map([['id', Array.from({ length: 30 }, (_, i) => String(i))], ['x', Array.from({ length: 30 }, (_, i) => `x${i}`)]])
  const result = webhookPurge({ purge: { tags: ['{id}-{x}'], urls: [], prefixes: [], mode: 'hard' } }, fields)
  t.equal(result.purge.tags.length, 256)
  t.match(result.skipped, [{ template: '{id}-{x}', reason: /more than 256 tags/ }])
})
