import t from 'tap'
import { NO_VARIANT } from '../../src/cache/key.ts'
import {
  cookieValue,
  mergeSpec,
  normalizeVaryValue,
  parseVary,
  sameVariant,
  variantId,
  variantValues
} from '../../src/cache/vary.ts'

t.test('parseVary lists the varying request fields (RFC 9110 §12.5.5)', async (t) => {
  const rows: Array<{ name: string, value: string | string[] | undefined, expected: string[] | '*' }> = [
    { name: 'no Vary, no names', value: undefined, expected: [] },
    { name: 'an empty Vary, no names', value: '', expected: [] },
    { name: 'names are lower-cased, deduplicated and sorted', value: 'Accept-Encoding, accept, ACCEPT-ENCODING', expected: ['accept', 'accept-encoding'] },
    { name: 'several lines are one list', value: ['Origin', 'Accept'], expected: ['accept', 'origin'] },
    { name: 'empty members are skipped', value: ' , Origin ,', expected: ['origin'] },
    { name: '§12.5.5 * varies on everything', value: 'Accept, *', expected: '*' }
  ]
  for (const row of rows) t.same(parseVary(row.value), row.expected, row.name)
})

t.test('normalizeVaryValue makes equivalent request values equal (RFC 9111 §4.1)', async (t) => {
  const rows: Array<{ name: string, field: string, value: string | string[] | undefined, expected: string | null }> = [
    { name: '§4.1 an absent field is null', field: 'accept', value: undefined, expected: null },
    { name: '§4.1 an empty field is "" (not null)', field: 'x-tenant', value: '', expected: '' },
    { name: '§4.1 whitespace folds', field: 'x-tenant', value: '  a   b ', expected: 'a b' },
    { name: '§4.1 other values keep their case', field: 'x-tenant', value: 'Acme', expected: 'Acme' },
    { name: '§4.1 list spacing is normalized', field: 'x-list', value: 'a ,b,  c', expected: 'a, b, c' },
    { name: '§4.1 several lines combine into one list', field: 'x-list', value: ['a', 'b'], expected: 'a, b' },
    { name: 'token lists are lower-cased and sorted', field: 'accept-encoding', value: 'GZIP, br', expected: 'br,gzip' },
    { name: 'token lists drop whitespace around ; and =', field: 'accept', value: 'text/html ; q = 0.5', expected: 'text/html;q=0.5' },
    { name: 'RFC 9110 §12.4.2 q=1 is the default and dropped', field: 'accept-encoding', value: 'gzip;q=1.000, br;q=1', expected: 'br,gzip' },
    { name: 'RFC 9110 §12.4.2 q loses trailing zeros', field: 'accept-language', value: 'en;q=0.50', expected: 'en;q=0.5' },
    { name: 'RFC 9110 §12.4.2 q=0 is kept', field: 'accept-encoding', value: 'identity;q=0', expected: 'identity;q=0' },
    { name: 'RFC 9110 §12.4.2 an empty q is invalid and kept as sent, not read as q=0', field: 'accept-encoding', value: 'gzip;q=', expected: 'gzip;q=' },
    { name: 'RFC 9110 §12.4.2 q=0x1 is invalid and kept as sent, not read as q=1', field: 'accept-encoding', value: 'gzip;q=0x1', expected: 'gzip;q=0x1' },
    { name: 'RFC 9110 §12.4.2 q above 1 is invalid and kept as sent', field: 'accept-encoding', value: 'gzip;q=2', expected: 'gzip;q=2' },
    { name: 'RFC 9110 §12.4.2 q with four decimals is invalid and kept', field: 'accept-encoding', value: 'gzip;q=0.5000', expected: 'gzip;q=0.5000' },
    { name: 'a non-numeric q is kept as sent', field: 'accept-encoding', value: 'gzip;q=abc', expected: 'gzip;q=abc' },
    { name: 'duplicate items collapse', field: 'accept-encoding', value: 'gzip, GZIP', expected: 'gzip' },
    { name: 'empty items are skipped', field: 'accept-encoding', value: ', gzip,,', expected: 'gzip' }
  ]
  for (const row of rows) t.equal(normalizeVaryValue(row.field, row.value), row.expected, row.name)
  t.not(normalizeVaryValue('accept-encoding', 'gzip;q=0.5'), normalizeVaryValue('accept-encoding', 'gzip'), 'different q-values stay different')
})

t.test('cookieValue finds one cookie', async (t) => {
  t.equal(cookieValue(undefined, 'a'), null)
  t.equal(cookieValue('a=1; b=2', 'b'), '2')
  t.equal(cookieValue('a=1;b=2', 'b'), '2')
  t.equal(cookieValue('ab=1; b=2', 'a'), null, 'names match whole')
  t.equal(cookieValue('a=1; a=2', 'a'), '1', 'the first of a repeated name')
  t.equal(cookieValue('a=', 'a'), '', 'empty is not absent')
  t.equal(cookieValue('a=x=y', 'a'), 'x=y')
})

t.test('variantValues, variantId and sameVariant select variants', async (t) => {
  const spec = mergeSpec(['x-tenant'], ['session'], ['accept-encoding', 'x-tenant'])
  t.same(spec, { headers: ['accept-encoding', 'x-tenant'], cookies: ['session'] }, 'mergeSpec merges, deduplicates and sorts')
  const a = variantValues(spec, { 'accept-encoding': 'gzip, br', 'x-tenant': 'acme', cookie: 'session=s1' })
  t.same(a, { 'accept-encoding': 'br,gzip', 'x-tenant': 'acme', 'cookie:session': 's1' })
  const b = variantValues(spec, { 'accept-encoding': 'BR,gzip', 'x-tenant': 'acme', cookie: 'other=1; session=s1' })
  t.equal(variantId(a), variantId(b), 'equivalent requests share a variant id')
  t.ok(sameVariant(a, b))
  const c = variantValues(spec, { 'accept-encoding': 'br,gzip', 'x-tenant': 'acme' })
  t.not(variantId(a), variantId(c), 'a missing cookie is another variant')
  t.notOk(sameVariant(a, c))
  t.not(variantId({ h: null }), variantId({ h: '' }), 'absent differs from empty')
  t.not(variantId({ h: 'null' }), variantId({ h: null }), 'the string "null" differs from absent')
  t.equal(variantId({}), NO_VARIANT, 'no values, no variant')
  t.equal(variantId({ b: '1', a: '2' }), variantId({ a: '2', b: '1' }), 'the order of names does not matter')
  t.notOk(sameVariant({ a: '1' }, { b: '1' }), 'different names differ')
  t.notOk(sameVariant({ a: '1' }, { a: '1', b: null }), 'different sizes differ')
  t.notOk(sameVariant({ a: null }, { b: null }), 'a null value needs the same name')
})
