import t from 'tap'
import fc from 'fast-check'
import {
  globMatcher,
  normalizeAbsoluteUrl,
  normalizeEncoding,
  normalizeRequestUrl,
  originOf,
  removeDotSegments,
  type KeyInput,
  type NormalizedUrl
} from '../../src/cache/key.ts'

const key = (target: string, host = 'example.com', scheme = 'http', ignore?: (name: string) => boolean): string | null => {
  const n = normalizeRequestUrl({ scheme, host, target }, ignore)
  return n.ok ? n.key : null
}

t.test('normalizeRequestUrl gives one key per resource (RFC 3986 §6, RFC 9111 §4.1)', async (t) => {
  const utm = globMatcher(['utm_*', 'fbclid'])
  const rows: Array<{ name: string, input: KeyInput, ignore?: (name: string) => boolean, key: string | null }> = [
    { name: '§6.2.2.1 the scheme is lower-cased', input: { scheme: 'HTTP', host: 'example.com', target: '/' }, key: 'http://example.com/' },
    { name: '§6.2.2.1 the host is lower-cased', input: { scheme: 'http', host: 'ExAmple.COM', target: '/' }, key: 'http://example.com/' },
    { name: '§6.2.3 port 80 is dropped for http', input: { scheme: 'http', host: 'example.com:80', target: '/' }, key: 'http://example.com/' },
    { name: '§6.2.3 port 443 is dropped for https', input: { scheme: 'https', host: 'example.com:443', target: '/' }, key: 'https://example.com/' },
    { name: '§6.2.3 port 443 is kept for http', input: { scheme: 'http', host: 'example.com:443', target: '/' }, key: 'http://example.com:443/' },
    { name: '§6.2.3 port 80 is kept for https', input: { scheme: 'https', host: 'example.com:80', target: '/' }, key: 'https://example.com:80/' },
    { name: '§6.2.3 a non-default port is kept', input: { scheme: 'http', host: 'example.com:8080', target: '/' }, key: 'http://example.com:8080/' },
    { name: '§6.2.3 an empty port is dropped with its colon', input: { scheme: 'https', host: 'example.com:', target: '/' }, key: 'https://example.com/' },
    { name: '§6.2.3 leading zeros of a port are dropped', input: { scheme: 'http', host: 'example.com:0080', target: '/' }, key: 'http://example.com/' },
    { name: '§3.2.2 an IPv6 literal keeps its port', input: { scheme: 'http', host: '[::1]:8080', target: '/' }, key: 'http://[::1]:8080/' },
    { name: '§6.2.2.1 the path keeps its case', input: { scheme: 'http', host: 'h', target: '/A/b/C' }, key: 'http://h/A/b/C' },
    { name: '§6.2.2.2 %41 (unreserved) decodes to A', input: { scheme: 'http', host: 'h', target: '/%41' }, key: 'http://h/A' },
    { name: '§6.2.2.2 %7E (unreserved) decodes to ~', input: { scheme: 'http', host: 'h', target: '/%7E%7e' }, key: 'http://h/~~' },
    { name: '§6.2.2.2 %2D %2E %5F decode to - . _', input: { scheme: 'http', host: 'h', target: '/a%2Db%2Ec%5Fd' }, key: 'http://h/a-b.c_d' },
    { name: '§6.2.2.1 %2f gets upper-case hex and is not decoded to /', input: { scheme: 'http', host: 'h', target: '/a%2fb' }, key: 'http://h/a%2Fb' },
    { name: '§2.2 escapes of reserved characters stay escaped', input: { scheme: 'http', host: 'h', target: '/%3a%40%21' }, key: 'http://h/%3A%40%21' },
    { name: '§2.4 %25 stays an escaped percent', input: { scheme: 'http', host: 'h', target: '/100%25' }, key: 'http://h/100%25' },
    { name: '§6.2.2.2 non-ASCII escapes get upper-case hex', input: { scheme: 'http', host: 'h', target: '/caf%c3%a9' }, key: 'http://h/caf%C3%A9' },
    { name: '§5.2.4 /a/../b is /b', input: { scheme: 'http', host: 'h', target: '/a/../b' }, key: 'http://h/b' },
    { name: '§5.2.4 /a/%2e%2e/b is /b (escaped dots are dots)', input: { scheme: 'http', host: 'h', target: '/a/%2e%2e/b' }, key: 'http://h/b' },
    { name: '§5.2.4 /a/%2E./b is /b', input: { scheme: 'http', host: 'h', target: '/a/%2E./b' }, key: 'http://h/b' },
    { name: '§5.2.4 /a/./b is /a/b', input: { scheme: 'http', host: 'h', target: '/a/./b' }, key: 'http://h/a/b' },
    { name: '§5.2.4 a trailing .. keeps the trailing slash', input: { scheme: 'http', host: 'h', target: '/a/b/..' }, key: 'http://h/a/' },
    { name: '§5.2.4 .. above the root stays at the root', input: { scheme: 'http', host: 'h', target: '/../../a' }, key: 'http://h/a' },
    { name: '§5.2.4 ... is an ordinary segment', input: { scheme: 'http', host: 'h', target: '/a/.../b' }, key: 'http://h/a/.../b' },
    { name: '§5.2.4 ..%2F is not a dot segment', input: { scheme: 'http', host: 'h', target: '/a/..%2fb' }, key: 'http://h/a/..%2Fb' },
    { name: '§3.3 //b keeps its empty segment', input: { scheme: 'http', host: 'h', target: '//b' }, key: 'http://h//b' },
    { name: '§3.3 a trailing slash is kept', input: { scheme: 'http', host: 'h', target: '/a/' }, key: 'http://h/a/' },
    { name: '§2.1 %zz is rejected', input: { scheme: 'http', host: 'h', target: '/a%zz' }, key: null },
    { name: '§2.1 a trailing %4 is rejected', input: { scheme: 'http', host: 'h', target: '/a%4' }, key: null },
    { name: '§2.1 a bare trailing % is rejected', input: { scheme: 'http', host: 'h', target: '/a%' }, key: null },
    { name: '§2.1 an invalid escape in the query is rejected', input: { scheme: 'http', host: 'h', target: '/?a=%g1' }, key: null },
    { name: '§2.5 raw non-ASCII is encoded as UTF-8', input: { scheme: 'http', host: 'h', target: '/café' }, key: 'http://h/caf%C3%A9' },
    { name: '§2.5 a raw character outside the BMP is encoded as its 4 UTF-8 bytes', input: { scheme: 'http', host: 'h', target: '/😀' }, key: 'http://h/%F0%9F%98%80' },
    { name: '§2.5 a lone UTF-16 surrogate is rejected (no UTF-8 form)', input: { scheme: 'http', host: 'h', target: '/a\uD83Db' }, key: null },
    { name: '§2.1 a raw space is encoded as %20', input: { scheme: 'http', host: 'h', target: '/a b?c d=e f' }, key: 'http://h/a%20b?c%20d=e%20f' },
    { name: '§2.1 raw characters that may not appear (") < > | are encoded', input: { scheme: 'http', host: 'h', target: '/"<>|' }, key: 'http://h/%22%3C%3E%7C' },
    { name: '§3.4 the query is sorted by name', input: { scheme: 'http', host: 'h', target: '/?b=2&a=1&c=3' }, key: 'http://h/?a=1&b=2&c=3' },
    { name: '§3.4 repeated names keep their order', input: { scheme: 'http', host: 'h', target: '/?b=1&a=2&b=0&a=1' }, key: 'http://h/?a=2&a=1&b=1&b=0' },
    { name: '§3.4 names sort by their decoded form', input: { scheme: 'http', host: 'h', target: '/?%62=1&a=2' }, key: 'http://h/?a=2&b=1' },
    { name: 'ignored params matching utm_* leave the key', input: { scheme: 'http', host: 'h', target: '/p?utm_source=x&id=1&utm_medium=y' }, ignore: utm, key: 'http://h/p?id=1' },
    { name: 'ignored params match on the decoded name (utm%5Fsource)', input: { scheme: 'http', host: 'h', target: '/p?utm%5Fsource=x&id=1' }, ignore: utm, key: 'http://h/p?id=1' },
    { name: 'ignored params by exact name (fbclid)', input: { scheme: 'http', host: 'h', target: '/p?fbclid=1&fbclid2=2' }, ignore: utm, key: 'http://h/p?fbclid2=2' },
    { name: 'a query with only ignored params leaves no ?', input: { scheme: 'http', host: 'h', target: '/p?utm_a=1' }, ignore: utm, key: 'http://h/p' },
    { name: '§6.2.3 a lone ? is dropped', input: { scheme: 'http', host: 'h', target: '/p?' }, key: 'http://h/p' },
    { name: 'empty pairs are dropped', input: { scheme: 'http', host: 'h', target: '/p?&a=1&&b=2&' }, key: 'http://h/p?a=1&b=2' },
    { name: '"a" and "a=" stay distinct', input: { scheme: 'http', host: 'h', target: '/p?a' }, key: 'http://h/p?a' },
    { name: '"a=" keeps its =', input: { scheme: 'http', host: 'h', target: '/p?a=' }, key: 'http://h/p?a=' },
    { name: '%26 inside a value stays escaped and does not split pairs', input: { scheme: 'http', host: 'h', target: '/p?b=1%262&a=1' }, key: 'http://h/p?a=1&b=1%262' },
    { name: '%3D stays escaped, distinct from a literal =', input: { scheme: 'http', host: 'h', target: '/p?a%3db=c' }, key: 'http://h/p?a%3Db=c' },
    { name: '+ is kept as +, deliberately not read as a space', input: { scheme: 'http', host: 'h', target: '/p?q=a+b' }, key: 'http://h/p?q=a+b' },
    { name: '§3.5 the fragment is dropped', input: { scheme: 'http', host: 'h', target: '/p?a=1#frag' }, key: 'http://h/p?a=1' },
    { name: '§3.5 a fragment right after the path is dropped', input: { scheme: 'http', host: 'h', target: '/p#a?b=1' }, key: 'http://h/p' },
    { name: 'a ? inside the query stays literal', input: { scheme: 'http', host: 'h', target: '/p?a=?b' }, key: 'http://h/p?a=?b' }
  ]
  for (const row of rows) {
    const n = normalizeRequestUrl(row.input, row.ignore)
    t.equal(n.ok ? n.key : null, row.key, row.name)
  }
})

t.test('requests that name different resources get different keys', async (t) => {
  const rows: Array<[string, string, string]> = [
    ['§3.3 //b and /b differ', '//b', '/b'],
    ['§6.2.2.2 %2F and / differ', '/a%2Fb', '/a/b'],
    ['§3.3 a trailing slash differs', '/a/', '/a'],
    ['§6.2.2.1 path case differs', '/A', '/a'],
    ['"a" and "a=" differ', '/?a', '/?a='],
    ['+ and %20 differ, deliberately (RFC 3986 does not equate them)', '/?q=a+b', '/?q=a%20b'],
    ['repeated names in another order differ', '/?a=1&a=2', '/?a=2&a=1'],
    ['+ and %20 in a name keep their relative order, as form decoding would read them as one name', '/?a+b=1&a%20b=2', '/?a%20b=2&a+b=1'],
    ['%3D in a name differs from a literal =', '/?a%3Db=c', '/?a=b%3Dc'],
    ['different astral characters differ', '/😀', '/😁'],
    ['an astral character differs from U+FFFD', '/😀', '/\uFFFD\uFFFD']
  ]
  for (const [name, a, b] of rows) {
    const ka = key(a)
    const kb = key(b)
    t.not(ka, null, `${name}: ${a} is valid`)
    t.not(ka, kb, name)
  }
  t.equal(key('/?b=1&a=1'), key('/?a=1&b=1'), 'distinct names in another order are the same resource')
  t.equal(key('/%7e'), key('/~'), 'an escaped unreserved character equals the raw one')
  t.equal(key('/caf%C3%A9'), key('/café'), 'an escaped UTF-8 sequence equals the raw character')
})

t.test('a bad Host or target is rejected with a reason', async (t) => {
  const rows: Array<{ name: string, input: KeyInput }> = [
    { name: 'an empty Host', input: { scheme: 'http', host: '', target: '/' } },
    { name: 'a Host with a space', input: { scheme: 'http', host: 'exa mple.com', target: '/' } },
    { name: 'a Host with a path', input: { scheme: 'http', host: 'example.com/evil', target: '/' } },
    { name: 'a Host with userinfo', input: { scheme: 'http', host: 'user@example.com', target: '/' } },
    { name: 'a Host with a non-numeric port', input: { scheme: 'http', host: 'example.com:http', target: '/' } },
    { name: 'a Host with two ports', input: { scheme: 'http', host: 'example.com:80:81', target: '/' } },
    { name: 'a Host with a port beyond 65535', input: { scheme: 'http', host: 'example.com:65536', target: '/' } },
    { name: 'a Host with a six-digit port', input: { scheme: 'http', host: 'example.com:123456', target: '/' } },
    { name: 'an unbracketed IPv6 Host', input: { scheme: 'http', host: '::1', target: '/' } },
    { name: 'an unsupported scheme', input: { scheme: 'ftp', host: 'example.com', target: '/' } },
    { name: 'an absolute-form target', input: { scheme: 'http', host: 'example.com', target: 'http://example.com/' } },
    { name: 'the asterisk-form target', input: { scheme: 'http', host: 'example.com', target: '*' } },
    { name: 'an empty target', input: { scheme: 'http', host: 'example.com', target: '' } }
  ]
  for (const row of rows) {
    const n = normalizeRequestUrl(row.input)
    t.equal(n.ok, false, row.name)
    if (!n.ok) t.type(n.reason, 'string', `${row.name} has a reason`)
  }
})

t.test('normalizeRequestUrl reports authority, path and the forwarded target', async (t) => {
  const n = normalizeRequestUrl({ scheme: 'https', host: 'Example.com:443', target: '/a/../B?z=1&utm_x=2&a=%7e#f' }, globMatcher(['utm_*']))
  t.same(n, { ok: true, key: 'https://example.com/B?a=~&z=1', authority: 'example.com', pathAndQuery: '/B?a=~&z=1', path: '/B' })
})

t.test('normalizeAbsoluteUrl normalizes purge and Location URLs like requests', async (t) => {
  const rows: Array<[string, string, string | null]> = [
    ['a full URL', 'HTTP://Example.COM:80/a/./b?y=2&x=1#f', 'http://example.com/a/b?x=1&y=2'],
    ['§6.2.3 an empty path is /', 'https://example.com', 'https://example.com/'],
    ['§6.2.3 an empty path before a query is /', 'https://example.com?b=1&a=2', 'https://example.com/?a=2&b=1'],
    ['§6.2.3 an empty path before a fragment is /', 'https://example.com#top', 'https://example.com/'],
    ['a non-default port is kept', 'https://example.com:8443/x', 'https://example.com:8443/x'],
    ['a relative URL is rejected', '/a/b', null],
    ['a scheme-relative URL is rejected', '//example.com/a', null],
    ['another scheme is rejected', 'ftp://example.com/a', null],
    ['userinfo is rejected', 'http://u:p@example.com/', null]
  ]
  for (const [name, url, expected] of rows) {
    const n = normalizeAbsoluteUrl(url)
    t.equal(n.ok ? n.key : null, expected, name)
  }
  const n = normalizeAbsoluteUrl('http://h/p?utm_source=1&a=1', globMatcher(['utm_*']))
  t.equal(n.ok ? n.key : null, 'http://h/p?a=1', 'ignored params apply to absolute URLs too')
})

t.test('originOf gives the scheme and authority of a key', async (t) => {
  t.equal(originOf('http://example.com/a/b?c=/d'), 'http://example.com')
  t.equal(originOf('https://example.com:8443/'), 'https://example.com:8443')
  t.equal(originOf('http://[::1]:8080/x'), 'http://[::1]:8080')
  t.equal(originOf('http://example.com'), 'http://example.com', 'a key without a path is its own origin')
})

t.test('globMatcher matches whole names with * as the only wildcard', async (t) => {
  const m = globMatcher(['utm_*', 'a.b', '*_id'])
  t.ok(m('utm_source'))
  t.ok(m('utm_'))
  t.notOk(m('xutm_source'), 'anchored at the start')
  t.ok(m('a.b'))
  t.notOk(m('axb'), '. is literal')
  t.ok(m('session_id'))
  t.notOk(m('session_idx'), 'anchored at the end')
  t.notOk(globMatcher([])('anything'), 'no globs match nothing')
})

t.test('removeDotSegments follows RFC 3986 §5.2.4', async (t) => {
  const rows: Array<[string, string]> = [
    ['/a/b/c/./../../g', '/a/g'],
    ['/mid/content=5/../6', '/mid/6'],
    ['/.', '/'],
    ['/..', '/'],
    ['/a/..', '/'],
    ['//..', '/'],
    ['//../b', '/b'],
    ['/a/.//b', '/a//b'],
    ['/a/b/../../..', '/']
  ]
  for (const [input, out] of rows) t.equal(removeDotSegments(input), out, `${input} -> ${out}`)
})

t.test('normalizeEncoding keeps the characters it is told to keep', async (t) => {
  t.equal(normalizeEncoding('a&b', /[a-z]/), 'a%26b')
  t.equal(normalizeEncoding('%2a', /[a-z]/), '%2A')
  t.equal(normalizeEncoding('%', /[a-z]/), null)
})

// ---------------------------------------------------------------------------------------------
// Properties. The oracle below decodes a target into what it names, independently of key.ts:
// the path as a list of decoded segments (bytes) after RFC 3986 §5.2.4, and the query as a
// multiset of decoded (name, value) pairs ('+' literal, empty pairs dropped).

const enc = new TextEncoder()

/** Percent-decodes to bytes; raw characters as UTF-8. */
function decodeBytes (s: string): number[] {
  const out: number[] = []
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%') {
      out.push(parseInt(s.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      const cp = s.codePointAt(i) ?? 0
      const ch = String.fromCodePoint(cp)
      out.push(...enc.encode(ch))
      i += ch.length - 1
    }
  }
  return out
}

const hex = (bytes: number[]): string => bytes.map((b) => b.toString(16).padStart(2, '0')).join('')

/** RFC 3986 §5.2.4 as written: the input buffer / output buffer algorithm. */
function rfcRemoveDots (path: string): string {
  let input = path
  let output = ''
  while (input !== '') {
    if (input.startsWith('../')) input = input.slice(3)
    else if (input.startsWith('./')) input = input.slice(2)
    else if (input.startsWith('/./')) input = input.slice(2)
    else if (input === '/.') input = '/'
    else if (input.startsWith('/../') || input === '/..') {
      input = '/' + input.slice(input === '/..' ? 3 : 4)
      const cut = output.lastIndexOf('/')
      output = cut === -1 ? '' : output.slice(0, cut)
    } else if (input === '.' || input === '..') input = ''
    else {
      const next = input.indexOf('/', input.startsWith('/') ? 1 : 0)
      const seg = next === -1 ? input : input.slice(0, next)
      output += seg
      input = next === -1 ? '' : input.slice(next)
    }
  }
  return output
}

function meaning (target: string, ignore: (name: string) => boolean): { path: string, query: string[] } {
  const q = target.indexOf('?')
  const rawPath = q === -1 ? target : target.slice(0, q)
  // Each segment stays empty, becomes '.' or '..' when it decodes to one, else 'x' + hex of its bytes, so that
  // only real dot segments are dot segments and the algorithm sees no other '.' or '/'.
  const tokens = rawPath.split('/').map((seg, i) => {
    if (i === 0) return ''
    const b = decodeBytes(seg)
    const text = String.fromCharCode(...b)
    if (b.length === 0) return ''
    return text === '.' || text === '..' ? text : 'x' + hex(b)
  })
  const path = rfcRemoveDots(tokens.join('/'))
  const query: string[] = []
  if (q !== -1) {
    for (const pair of target.slice(q + 1).split('&')) {
      if (pair === '') continue
      const eq = pair.indexOf('=')
      const name = decodeBytes(eq === -1 ? pair : pair.slice(0, eq))
      const nameText = Buffer.from(name).toString('utf8').replace(/\+/g, ' ')
      if (ignore(nameText)) continue
      query.push(eq === -1 ? hex(name) : `${hex(name)}=${hex(decodeBytes(pair.slice(eq + 1)))}`)
    }
  }
  query.sort()
  return { path, query }
}

const pathPiece = fc.constantFrom(
  'a', 'B', 'z', '0', '9', '-', '.', '_', '~', '!', '$', '&', "'", '(', ')', '*', '+', ',', ';', '=', ':', '@',
  '%41', '%61', '%7e', '%7E', '%2e', '%2E', '%2f', '%2F', '%3f', '%25', '%20', '%c3%a9', '%C3%A9', '%23', '%26',
  ' ', 'é', '😀', '😁', '\uFFFD', '"', '|', '[', ']'
)
const segment = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('', '.', '..', '%2e', '%2E%2e', '.%2E') },
  { weight: 4, arbitrary: fc.array(pathPiece, { minLength: 1, maxLength: 4 }).map((a) => a.join('')) }
)
const path = fc.array(segment, { minLength: 1, maxLength: 5 }).map((segs) => '/' + segs.join('/'))
const queryPiece = fc.constantFrom(
  'a', 'b', 'B', 'utm_x', '1', '+', '%20', '%2B', '%2b', '%3D', '%3d', '%26', '%41', '%7E', '~', '/', '?', ':', '@',
  'é', '%C3%A9', '😀', ' '
)
const queryToken = fc.array(queryPiece, { minLength: 0, maxLength: 3 }).map((a) => a.join(''))
const pair = fc.oneof(
  { weight: 1, arbitrary: queryToken },
  { weight: 4, arbitrary: fc.tuple(queryToken, queryToken).map(([n, v]) => `${n}=${v}`) }
)
const query = fc.option(fc.array(pair, { maxLength: 5 }).map((ps) => ps.join('&')), { nil: undefined })
const target = fc.tuple(path, query).map(([p, q]) => (q === undefined ? p : `${p}?${q}`))
const ignoreUtm = globMatcher(['utm_*'])

const ok = (n: NormalizedUrl): Extract<NormalizedUrl, { ok: true }> => {
  if (!n.ok) throw new Error(`unexpected rejection: ${n.reason}`)
  return n
}

t.test('normalization is idempotent: a key\'s own pathAndQuery normalizes to the same key', async (t) => {
  fc.assert(fc.property(target, fc.constantFrom('http', 'https'), fc.constantFrom('Example.com', 'example.com:80', 'h:8443'), (tg, scheme, host) => {
    const first = ok(normalizeRequestUrl({ scheme, host, target: tg }, ignoreUtm))
    const again = ok(normalizeRequestUrl({ scheme, host: first.authority, target: first.pathAndQuery }, ignoreUtm))
    return again.key === first.key && again.pathAndQuery === first.pathAndQuery
  }), { numRuns: 3000 })
  t.pass('idempotent')
})

// Two independent random targets rarely share a key, so the injectivity property also runs on a
// dense space: few short pieces, many spellings of the same few resources.
const densePiece = fc.constantFrom('a', 'A', '%41', '%61', '.', '%2e', '%2F', '+', '%20', ' ', '😀', '😁', '\uFFFD', '%EF%BF%BD', '=', '%3D')
const denseToken = fc.array(densePiece, { maxLength: 2 }).map((a) => a.join(''))
const denseTarget = fc.tuple(
  fc.array(denseToken, { minLength: 1, maxLength: 3 }),
  fc.option(fc.array(denseToken, { maxLength: 3 }), { nil: undefined })
).map(([segs, q]) => '/' + segs.join('/') + (q === undefined ? '' : '?' + q.join('&')))

t.test('targets that name different resources never share a key', async (t) => {
  let shared = 0
  const check = (a: string, b: string): boolean => {
    const ka = ok(normalizeRequestUrl({ scheme: 'http', host: 'h', target: a }, ignoreUtm)).key
    const kb = ok(normalizeRequestUrl({ scheme: 'http', host: 'h', target: b }, ignoreUtm)).key
    if (ka !== kb) return true
    shared++
    const ma = meaning(a, ignoreUtm)
    const mb = meaning(b, ignoreUtm)
    return ma.path === mb.path && ma.query.join('&') === mb.query.join('&')
  }
  fc.assert(fc.property(target, target, check), { numRuns: 3000 })
  fc.assert(fc.property(denseTarget, denseTarget, check), { numRuns: 20000 })
  t.ok(shared > 30, `the dense run compared many pairs that share a key (${shared})`)
})

t.test('equivalent spellings of one target share a key', async (t) => {
  // Re-spell a target: escape unreserved characters, change hex case, insert empty pairs.
  const respell = (tg: string, choices: boolean[]): string => {
    let i = 0
    const pick = (): boolean => choices[i++ % choices.length] ?? false
    const part = (s: string, inQuery: boolean): string => s.replace(/%[0-9A-Fa-f]{2}|[A-Za-z0-9~._-]|&/g, (m) => {
      if (m.startsWith('%')) return pick() ? m.toLowerCase() : m.toUpperCase()
      if (m === '&') return inQuery && pick() ? '&&' : '&'
      return pick() ? '%' + m.charCodeAt(0).toString(16) : m
    })
    const q = tg.indexOf('?')
    return q === -1 ? part(tg, false) : `${part(tg.slice(0, q), false)}?${part(tg.slice(q + 1), true)}${pick() ? '#frag' : ''}`
  }
  fc.assert(fc.property(target, fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }), (tg, choices) => {
    const a = ok(normalizeRequestUrl({ scheme: 'http', host: 'h', target: tg }, ignoreUtm)).key
    const b = ok(normalizeRequestUrl({ scheme: 'http', host: 'h', target: respell(tg, choices) }, ignoreUtm)).key
    return a === b
  }), { numRuns: 3000 })
  t.pass('spelling does not matter')
})

t.test('the order of parameters with distinct names does not matter', async (t) => {
  const names = fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'x', 'y'), { minLength: 1, maxLength: 5 })
  fc.assert(fc.property(names, fc.array(fc.nat()), (ns, seeds) => {
    const pairs = ns.map((n, i) => `${n}=${i}`)
    const shuffled = [...pairs]
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = (seeds[i] ?? 0) % (i + 1)
      const tmp = shuffled[i] as string
      shuffled[i] = shuffled[j] as string
      shuffled[j] = tmp
    }
    return key('/p?' + pairs.join('&')) === key('/p?' + shuffled.join('&'))
  }))
  t.pass('canonical order')
})
