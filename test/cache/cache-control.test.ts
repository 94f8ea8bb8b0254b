import t from 'tap'
import {
  deltaSeconds,
  effectiveResponseDirectives,
  has,
  parseCacheControl,
  TARGETED_FIELDS
} from '../../src/cache/cache-control.ts'

const asObject = (value: string | readonly string[] | undefined): Record<string, string | true> =>
  Object.fromEntries(parseCacheControl(value))

t.test('parseCacheControl reads directives tolerantly (RFC 9111 §5.2)', async (t) => {
  const rows: Array<{ name: string, value: string | readonly string[] | undefined, expected: Record<string, string | true> }> = [
    { name: '§5.2 an absent header has no directives', value: undefined, expected: {} },
    { name: '§5.2 an empty header has no directives', value: '', expected: {} },
    { name: '§5.2 a whitespace-only header has no directives', value: ' \t ', expected: {} },
    { name: '§5.2 a lone comma has no directives', value: ' , ,', expected: {} },
    { name: '§5.2 a directive without a value is true', value: 'no-store', expected: { 'no-store': true } },
    { name: '§5.2 directive names are case-insensitive', value: 'Max-Age=60, NO-CACHE', expected: { 'max-age': '60', 'no-cache': true } },
    { name: '§5.2 values keep their case', value: 'no-cache="Set-Cookie"', expected: { 'no-cache': 'Set-Cookie' } },
    { name: '§5.2 whitespace around tokens is ignored', value: '  public ,\tmax-age = 60 ,  s-maxage=30  ', expected: { public: true, 'max-age': '60', 's-maxage': '30' } },
    { name: '§5.2 a quoted value may hold commas', value: 'private="a, b", max-age=5', expected: { private: 'a, b', 'max-age': '5' } },
    { name: '§5.2 a quoted delta-seconds is read unquoted', value: 'max-age="60"', expected: { 'max-age': '60' } },
    { name: 'RFC 9110 §5.6.4 a quoted-pair is unescaped', value: 'ext="a\\"b\\\\c"', expected: { ext: 'a"b\\c' } },
    { name: 'text after a closing quote up to the comma is dropped', value: 'ext="a"junk, public', expected: { ext: 'a', public: true } },
    { name: 'an unterminated quote runs to the end', value: 'ext="a, b', expected: { ext: 'a, b' } },
    { name: '§4.2.1 a duplicate directive keeps its first occurrence', value: 'max-age=10, max-age=20', expected: { 'max-age': '10' } },
    { name: '§4.2.1 duplicates differing in case keep the first', value: 'MAX-AGE=10, max-age=20', expected: { 'max-age': '10' } },
    { name: '§5.2.3 unknown extensions are kept', value: 'stale-while-revalidate=30, x-ext', expected: { 'stale-while-revalidate': '30', 'x-ext': true } },
    { name: 'an empty value stays an empty string', value: 'max-age=', expected: { 'max-age': '' } },
    { name: 'an empty name is skipped', value: '=5, public', expected: { public: true } },
    { name: 'RFC 9110 §5.3 several field lines are one comma list', value: ['max-age=10', 'public'], expected: { 'max-age': '10', public: true } },
    { name: 'RFC 9110 §5.3 the first line wins across lines', value: ['max-age=10', 'max-age=20'], expected: { 'max-age': '10' } },
    { name: 'an array of empty lines has no directives', value: ['', ' '], expected: {} }
  ]
  for (const row of rows) t.same(asObject(row.value), row.expected, row.name)
})

t.test('deltaSeconds reads delta-seconds values (RFC 9111 §1.2.2)', async (t) => {
  const rows: Array<{ name: string, value: string, directive: string, expected: number | 'invalid' | undefined }> = [
    { name: '§1.2.2 an absent directive is undefined', value: 'public', directive: 'max-age', expected: undefined },
    { name: '§1.2.2 a valid value', value: 'max-age=60', directive: 'max-age', expected: 60 },
    { name: '§1.2.2 zero is valid', value: 'max-age=0', directive: 'max-age', expected: 0 },
    { name: '§1.2.2 leading zeros are valid', value: 'max-age=007', directive: 'max-age', expected: 7 },
    { name: '§1.2.2 a negative value is invalid', value: 'max-age=-1', directive: 'max-age', expected: 'invalid' },
    { name: '§1.2.2 a fraction is invalid', value: 'max-age=1.5', directive: 'max-age', expected: 'invalid' },
    { name: '§1.2.2 a word is invalid', value: 'max-age=abc', directive: 'max-age', expected: 'invalid' },
    { name: '§1.2.2 a number with a unit is invalid', value: 'max-age=10s', directive: 'max-age', expected: 'invalid' },
    { name: '§1.2.2 a missing value is invalid', value: 'max-age', directive: 'max-age', expected: 'invalid' },
    { name: '§1.2.2 an empty value is invalid', value: 'max-age=', directive: 'max-age', expected: 'invalid' },
    { name: '§1.2.2 2^31 itself is kept', value: 's-maxage=2147483648', directive: 's-maxage', expected: 2147483648 },
    { name: '§1.2.2 a value beyond 2^31 is clamped to 2^31', value: 's-maxage=99999999999', directive: 's-maxage', expected: 2147483648 },
    { name: '§1.2.2 a value beyond any number is clamped to 2^31', value: `max-age=${'9'.repeat(400)}`, directive: 'max-age', expected: 2147483648 },
    { name: '§5.2 a quoted value is accepted', value: 'max-age="30"', directive: 'max-age', expected: 30 }
  ]
  for (const row of rows) t.equal(deltaSeconds(parseCacheControl(row.value), row.directive), row.expected, row.name)
})

t.test('has tells whether a directive is present', async (t) => {
  t.equal(has(parseCacheControl('Public'), 'public'), true)
  t.equal(has(parseCacheControl('private'), 'public'), false)
})

t.test('effectiveResponseDirectives picks the most specific targeted field (RFC 9213)', async (t) => {
  t.same(TARGETED_FIELDS, ['cachegate-cache-control', 'cdn-cache-control', 'surrogate-control'], '§2.2 the target list, most specific first; Surrogate-Control (W3C Edge Architecture) last')
  const rows: Array<{ name: string, headers: Record<string, string | string[]>, directives: Record<string, string | true>, targeted: boolean }> = [
    { name: '§2.2 without targeted fields, Cache-Control governs', headers: { 'cache-control': 'max-age=10' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.2 CDN-Cache-Control wins over Cache-Control', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=20' }, directives: { 'max-age': '20' }, targeted: true },
    { name: '§2.2 Cachegate-Cache-Control wins over CDN-Cache-Control', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=20', 'cachegate-cache-control': 'max-age=30' }, directives: { 'max-age': '30' }, targeted: true },
    { name: '§2.2 targeted directives replace Cache-Control entirely, they do not merge', headers: { 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=20' }, directives: { 'max-age': '20' }, targeted: true },
    { name: '§2.1 an empty targeted field is ignored', headers: { 'cache-control': 'max-age=10', 'cachegate-cache-control': '' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 an empty most-specific field falls through to the next', headers: { 'cache-control': 'max-age=10', 'cachegate-cache-control': ' ', 'cdn-cache-control': 'max-age=20' }, directives: { 'max-age': '20' }, targeted: true },
    { name: '§2.1 a targeted field of empty lines is ignored', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': ['', ''] }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 no header at all has no directives', headers: {}, directives: {}, targeted: false },
    // RFC 9213 §2.1: a targeted field is an RFC 8941 Dictionary; one that does not parse, or whose
    // known directives have the wrong type, is ignored as a whole and the next field governs.
    { name: '§2.1 a Dictionary with parameters and several members is read', headers: { 'cdn-cache-control': 'max-age=60;x=1, must-revalidate, no-cache="set-cookie"' }, directives: { 'max-age': '60', 'must-revalidate': true, 'no-cache': 'set-cookie' }, targeted: true },
    { name: '§2.1 a Boolean false directive is absent', headers: { 'cdn-cache-control': 'max-age=60, no-store=?0' }, directives: { 'max-age': '60' }, targeted: true },
    { name: '§2.1 an inner list of field names is kept', headers: { 'cdn-cache-control': 'private=("set-cookie" "x-a")' }, directives: { private: 'set-cookie, x-a' }, targeted: true },
    { name: '§2.1 a decimal max-age makes the field invalid: Cache-Control governs', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=3.5' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 a string max-age makes the field invalid', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age="3600"' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 a token max-age makes the field invalid', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=abc' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 a negative max-age makes the field invalid', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=-1' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 a no-store with a value makes the field invalid', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'no-store=1' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 an upper-case key does not parse as a Dictionary', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'Max-Age=3600' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 a trailing comma does not parse', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=3600,' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 an unterminated string does not parse', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'no-cache="a' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 spaces around = do not parse', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age = 5' }, directives: { 'max-age': '10' }, targeted: false },
    { name: '§2.1 an invalid Cachegate-Cache-Control falls through to a valid CDN-Cache-Control', headers: { 'cachegate-cache-control': 'max-age=1.5', 'cdn-cache-control': 'max-age=20' }, directives: { 'max-age': '20' }, targeted: true },
    { name: '§2.1 an integer beyond 15 digits does not parse', headers: { 'cache-control': 'max-age=10', 'cdn-cache-control': 'max-age=1234567890123456' }, directives: { 'max-age': '10' }, targeted: false },
    { name: 'Surrogate-Control governs when no RFC 9213 field does', headers: { 'cache-control': 'no-store', 'surrogate-control': 'max-age=600' }, directives: { 'max-age': '600' }, targeted: true },
    { name: 'Surrogate-Control directives targeted at another device are ignored', headers: { 'cache-control': 'max-age=10', 'surrogate-control': 'max-age=3600;other-device' }, directives: { 'max-age': '10' }, targeted: false },
    { name: 'Surrogate-Control directives targeted at cachegate apply, before untargeted ones', headers: { 'surrogate-control': 'max-age=5, max-age=600;cachegate, no-store;elsewhere' }, directives: { 'max-age': '600' }, targeted: true },
    { name: 'Surrogate-Control is read as tolerantly as Cache-Control (case, spaces)', headers: { 'surrogate-control': 'MaX-aGe = 30, No-Store' }, directives: { 'max-age': '30', 'no-store': true }, targeted: true },
    { name: 'CDN-Cache-Control wins over Surrogate-Control', headers: { 'cdn-cache-control': 'max-age=20', 'surrogate-control': 'max-age=30' }, directives: { 'max-age': '20' }, targeted: true }
  ]
  for (const row of rows) {
    const r = effectiveResponseDirectives(row.headers)
    t.same({ directives: Object.fromEntries(r.directives), targeted: r.targeted }, { directives: row.directives, targeted: row.targeted }, row.name)
  }
})
