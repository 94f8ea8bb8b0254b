// More properties of cache keys, aimed at poisoning: what an attacker can vary in a URL
// (ignored parameters, dot segments, raw bytes) never moves a request onto another key, and a
// key is always safe to forward, log and use in Redis. (key.test.ts holds idempotence and
// distinct-resources-distinct-keys against an independent oracle.)
import t from 'tap'
import fc from 'fast-check'
import { globMatcher, normalizeRequestUrl } from '../../src/cache/key.ts'

const ignore = globMatcher(['utm_*', 'fbclid'])

const normalize = (target: string): { key: string, pathAndQuery: string } | null => {
  const n = normalizeRequestUrl({ scheme: 'http', host: 'shop.test', target }, ignore)
  return n.ok ? { key: n.key, pathAndQuery: n.pathAndQuery } : null
}

const word = fc.stringMatching(/^[a-z0-9]{1,6}$/)
const segment = fc.oneof(word, fc.constantFrom('A', '~', '%41', '%7E', 'caf%C3%A9', '%2F', 'a%20b'))
const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => '/' + s.join('/'))
const pair = fc.tuple(fc.constantFrom('id', 'q', 'page', 'a', 'b'), word).map(([n, v]) => `${n}=${v}`)
const query = fc.array(pair, { maxLength: 4 })
const ignored = fc.tuple(fc.constantFrom('utm_source', 'utm_medium', 'utm%5Fcampaign', 'fbclid', 'utm_'), fc.constantFrom('x', '%3Cscript%3E', '', 'evil.test'))
  .map(([n, v]) => `${n}=${v}`)

t.test('ignored parameters added anywhere never change the key or what is forwarded', async (t) => {
  fc.assert(fc.property(path, query, fc.array(fc.tuple(ignored, fc.nat()), { minLength: 1, maxLength: 4 }), (p, q, extra) => {
    const plain = normalize(q.length === 0 ? p : `${p}?${q.join('&')}`)
    const mixed = [...q]
    for (const [param, at] of extra) mixed.splice(at % (mixed.length + 1), 0, param)
    const attacked = normalize(`${p}?${mixed.join('&')}`)
    return plain !== null && attacked !== null && attacked.key === plain.key && attacked.pathAndQuery === plain.pathAndQuery
  }), { numRuns: 2000 })
  t.pass('no ignored parameter reaches the key or the origin')
})

t.test('every spelling of a dot segment resolves to the same key as the path without it', async (t) => {
  const dots = fc.constantFrom('..', '%2e%2e', '%2E%2E', '%2e.', '.%2E')
  const dot = fc.constantFrom('.', '%2e', '%2E')
  fc.assert(fc.property(word, path, dots, dot, (prefix, p, up, here) => {
    const expected = normalize(p)?.key
    return expected !== undefined &&
      normalize(`/${prefix}/${up}${p}`)?.key === expected &&
      normalize(`/${prefix}/${here}/${up}${p}`)?.key === expected &&
      normalize(`/${up}/${up}${p}`)?.key === expected
  }), { numRuns: 2000 })
  t.pass('/x/../p, /x/%2e%2e/p, /x/./../p and /../../p are /p')
})

t.test('any request target either normalizes to a key of visible ASCII or is refused; nothing throws', async (t) => {
  const piece = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 4 }),
    fc.constantFrom('%', '%z', '%4', '%41', '%e9', '\uD83D', '\uDE00', '?', '#', '&', '=', '/', '..', '\r\n', '\x00', ' ')
  )
  const target = fc.array(piece, { maxLength: 10 }).map((p) => '/' + p.join(''))
  let refused = 0
  fc.assert(fc.property(target, (tg) => {
    const n = normalizeRequestUrl({ scheme: 'http', host: 'shop.test', target: tg }, ignore)
    if (!n.ok) {
      refused++
      return typeof n.reason === 'string'
    }
    // Header-safe, log-safe, no fragment, and the forwarded target is the key's own path and query.
    return /^[\x21-\x7e]+$/.test(n.key) && !n.pathAndQuery.includes('#') && n.pathAndQuery.startsWith('/') &&
      n.key === `http://shop.test${n.pathAndQuery}` && normalize(n.pathAndQuery)?.key === n.key
  }), { numRuns: 5000 })
  t.ok(refused > 0, `some targets were refused (${refused}): lone surrogates and bad escapes`)
})

t.test('the same parameter repeated keeps its values in order: a=1&a=2 and a=2&a=1 stay apart', async (t) => {
  fc.assert(fc.property(word, word, word, (name, v1, v2) => {
    fc.pre(v1 !== v2)
    const a = normalize(`/p?${name}=${v1}&${name}=${v2}`)
    const b = normalize(`/p?${name}=${v2}&${name}=${v1}`)
    return a !== null && b !== null && a.key !== b.key && a.pathAndQuery.endsWith(`${name}=${v1}&${name}=${v2}`)
  }), { numRuns: 1000 })
  t.pass('order among repeats is part of the key')
})
