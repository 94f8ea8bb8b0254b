import t from 'tap'
import { contentLanguage, languageAlias, languageFallback, speaks, topLanguage } from '../../src/cache/language.ts'
import { LANGUAGE_ALIAS, mergeSpec, sameVariant, variantId, variantValues } from '../../src/cache/vary.ts'

t.test('topLanguage finds the one range an Accept-Language value prefers above all others (RFC 9110 §12.5.4)', async (t) => {
  const rows: Array<{ name: string, value: string | string[] | undefined, expected: string | undefined }> = [
    { name: 'no field, no language', value: undefined, expected: undefined },
    { name: 'an empty field, no language', value: '', expected: undefined },
    { name: 'one language', value: 'de', expected: 'de' },
    { name: 'lower-cased', value: 'DE-ch', expected: 'de-ch' },
    { name: '§12.4.2 the highest q wins, whatever the order', value: 'fr;q=0.5, de;q=1.0', expected: 'de' },
    { name: '§12.4.2 no q is q=1', value: 'en;q=0.8, de', expected: 'de' },
    { name: 'whitespace around ; is allowed', value: 'fr ; q=0.5 , de', expected: 'de' },
    { name: 'a Q in capitals is a weight', value: 'fr;Q=0.5, de', expected: 'de' },
    { name: '§5.6.1 empty list elements are ignored', value: ', de,, fr;q=0.1,', expected: 'de' },
    { name: 'several field lines are one list', value: ['fr;q=0.5', 'de'], expected: 'de' },
    { name: 'a tie at the top selects nothing', value: 'de, fr', expected: undefined },
    { name: 'a tie at a q below 1 selects nothing', value: 'de;q=0.5, fr;q=0.5, it;q=0.1', expected: undefined },
    { name: 'a tie below the top does not matter', value: 'de, fr;q=0.5, it;q=0.5', expected: 'de' },
    { name: 'the listed order does not break a tie', value: 'en, de', expected: undefined },
    { name: 'a lower q for de leaves fr first', value: 'de;q=0.9, fr', expected: 'fr' },
    { name: '* first selects nothing', value: '*, de;q=0.5', expected: undefined },
    { name: '* tied with the top selects nothing', value: 'de;q=0.5, *;q=0.5', expected: undefined },
    { name: '* below the top does not matter', value: 'de, *;q=0.1', expected: 'de' },
    { name: '§12.4.2 q=0 is not acceptable: nothing first', value: 'de;q=0', expected: undefined },
    { name: 'q=0 ranges are not candidates', value: 'de;q=0, fr;q=0.1', expected: 'fr' },
    { name: 'a range named twice selects nothing', value: 'de;q=0.1, DE', expected: undefined },
    { name: 'an invalid q selects nothing', value: 'de;q=2, fr;q=0.5', expected: undefined },
    { name: 'an empty q selects nothing', value: 'de;q=', expected: undefined },
    { name: 'q with four decimals selects nothing', value: 'de;q=0.5000', expected: undefined },
    { name: 'spaces around = are not a weight', value: 'de;q = 0.5', expected: undefined },
    { name: 'a parameter other than q selects nothing', value: 'de;level=1', expected: undefined },
    { name: 'two weights select nothing', value: 'de;q=1;q=0.5, fr;q=0.9', expected: undefined },
    { name: 'a range that is not a language tag selects nothing', value: 'de_DE, fr;q=0.5', expected: undefined },
    { name: 'a subtag over 8 characters selects nothing', value: 'de-abcdefghi', expected: undefined },
    { name: 'a weight without a range selects nothing', value: ';q=0.5, de', expected: undefined }
  ]
  for (const row of rows) t.equal(topLanguage(row.value), row.expected, row.name)
})

t.test('contentLanguage reads one language tag from Content-Language (RFC 9110 §8.5)', async (t) => {
  const rows: Array<{ name: string, value: string | string[] | undefined, expected: string | undefined }> = [
    { name: 'absent', value: undefined, expected: undefined },
    { name: 'empty', value: '', expected: undefined },
    { name: 'one tag, lower-cased', value: 'DE', expected: 'de' },
    { name: 'a tag with a region', value: 'de-CH', expected: 'de-ch' },
    { name: 'whitespace and empty elements around one tag', value: ' , de ,', expected: 'de' },
    { name: 'two tags: the content is in both, so not in one', value: 'de, en', expected: undefined },
    { name: 'two field lines are two tags', value: ['de', 'en'], expected: undefined },
    { name: 'not a tag', value: 'de;q=1', expected: undefined },
    { name: '* is not a language', value: '*', expected: undefined }
  ]
  for (const row of rows) t.equal(contentLanguage({ 'content-language': row.value }), row.expected, row.name)
  t.ok(speaks({ 'content-language': 'De' }, 'de'), 'speaks compares case-insensitively')
  t.notOk(speaks({ 'content-language': 'de-CH' }, 'de'), 'de-CH is not de (no prefix matching)')
  t.notOk(speaks({ 'content-language': 'de' }, 'de-ch'), 'de is not de-CH')
  t.notOk(speaks({}, 'de'), 'no Content-Language says nothing')
})

const LANGUAGE_ONLY = mergeSpec([], [], ['accept-language'])

const alias = (tag: string): Record<string, string | null> => ({ 'accept-language': tag, [LANGUAGE_ALIAS]: tag })

t.test('languageAlias: a response in one language is also stored as that language\'s alias, a variant of its own', async (t) => {
  const values = variantValues(LANGUAGE_ONLY, { 'accept-language': 'en, de' })
  t.same(languageAlias(LANGUAGE_ONLY, values, { 'content-language': 'De' }), alias('de'), 'the values of Accept-Language: de, marked as an alias')
  t.not(variantId(alias('de')), variantId(variantValues(LANGUAGE_ONLY, { 'accept-language': 'de' })), 'never the variant a request of Accept-Language: de selects')
  t.equal(languageAlias(LANGUAGE_ONLY, values, {}), undefined, 'no Content-Language, no alias')
  t.equal(languageAlias(LANGUAGE_ONLY, values, { 'content-language': 'de, en' }), undefined, 'two languages, no alias')
  const own = variantValues(LANGUAGE_ONLY, { 'accept-language': 'DE' })
  t.equal(languageAlias(LANGUAGE_ONLY, own, { 'content-language': 'de' }), undefined, 'the answer to Accept-Language: de itself needs none (the fallback reads it first)')
  const both = mergeSpec([], [], ['accept-encoding', 'accept-language'])
  t.equal(languageAlias(both, variantValues(both, { 'accept-language': 'en, de' }), { 'content-language': 'de' }), undefined, 'Vary names another field too')
  const keyed = mergeSpec(['x-tenant'], [], ['accept-language'])
  t.equal(languageAlias(keyed, variantValues(keyed, { 'accept-language': 'en, de' }), { 'content-language': 'de' }), undefined, 'a route key header takes part')
  const cookie = mergeSpec([], ['currency'], ['accept-language'])
  t.equal(languageAlias(cookie, variantValues(cookie, { 'accept-language': 'en, de' }), { 'content-language': 'de' }), undefined, 'a route key cookie takes part')
  const keyedOnLanguage = mergeSpec(['accept-language'], [], ['accept-language'])
  t.same(languageAlias(keyedOnLanguage, values, { 'content-language': 'de' }), alias('de'), 'a route keyed on Accept-Language itself qualifies')
})

t.test('no request selects an alias as its own variant, whatever it sends', async (t) => {
  // Hostile requests and origins: a field named like the mark, a Vary naming it, a cookie.
  const spellings: Array<{ vary: string[], cookies?: string[], headers: Record<string, string> }> = [
    { vary: ['accept-language'], headers: { 'accept-language': 'de', [LANGUAGE_ALIAS]: 'de' } },
    { vary: ['accept-language', LANGUAGE_ALIAS], headers: { 'accept-language': 'de', [LANGUAGE_ALIAS]: 'de' } },
    { vary: ['accept-language'], cookies: [LANGUAGE_ALIAS.replace(/^alias:/, '')], headers: { 'accept-language': 'de', cookie: 'content-language=de' } }
  ]
  for (const { vary, cookies = [], headers } of spellings) {
    const own = variantValues(mergeSpec([], cookies, vary), headers)
    t.notOk(sameVariant(own, alias('de')), `Vary ${vary.join(', ')}${cookies.length > 0 ? ', key cookie' : ''}: another variant`)
    t.not(variantId(own), variantId(alias('de')))
  }
})

t.test('languageFallback: a request whose variant is missing looks at its first language alone, then at that language\'s alias', async (t) => {
  const headers = { 'accept-language': 'fr;q=0.5, de;q=1.0' }
  const values = variantValues(LANGUAGE_ONLY, headers)
  t.same(languageFallback(LANGUAGE_ONLY, values, headers), [{ values: { 'accept-language': 'de' }, tag: 'de' }, { values: alias('de'), tag: 'de' }], 'the suite\'s case: the origin\'s answer to de first')
  const tie = { 'accept-language': 'de, fr' }
  t.same(languageFallback(LANGUAGE_ONLY, variantValues(LANGUAGE_ONLY, tie), tie), [], 'a tie looks nowhere')
  const own = { 'accept-language': 'de' }
  t.same(languageFallback(LANGUAGE_ONLY, variantValues(LANGUAGE_ONLY, own), own), [{ values: alias('de'), tag: 'de' }], 'Accept-Language: de looks at the alias only (its own variant is the other)')
  t.same(languageFallback(LANGUAGE_ONLY, variantValues(LANGUAGE_ONLY, {}), {}), [], 'no Accept-Language looks nowhere')
  const both = mergeSpec([], [], ['accept-encoding', 'accept-language'])
  t.same(languageFallback(both, variantValues(both, headers), headers), [], 'Vary names another field too')
  const cookie = mergeSpec([], ['currency'], ['accept-language'])
  t.same(languageFallback(cookie, variantValues(cookie, headers), headers), [], 'a route key cookie takes part')
})
