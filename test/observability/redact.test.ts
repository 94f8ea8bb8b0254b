// Query secrets are redacted in what is shown, whatever their case or encoding; other
// parameters, the path and the order stay as they were.
import t from 'tap'
import { DEFAULT_REDACT_QUERY } from '../../src/config/schema.ts'
import { queryRedactor } from '../../src/observability/redact.ts'

const redact = queryRedactor(DEFAULT_REDACT_QUERY)

t.test('secret-named parameters lose their value, case-insensitively and after percent-decoding', async (t) => {
  const rows: Array<[string, string]> = [
    ['http://a/p?token=abc', 'http://a/p?token=REDACTED'],
    ['http://a/p?page=2&API_KEY=k1&q=x', 'http://a/p?page=2&API_KEY=REDACTED&q=x'],
    ['http://a/p?Signature=s&sig=t&Password=p&secret=q&auth=r&apikey=u&key=v', 'http://a/p?Signature=REDACTED&sig=REDACTED&Password=REDACTED&secret=REDACTED&auth=REDACTED&apikey=REDACTED&key=REDACTED'],
    ['http://a/p?%74oken=abc', 'http://a/p?%74oken=REDACTED'],
    ['http://a/p?to%6Ben=abc&x=1', 'http://a/p?to%6Ben=REDACTED&x=1'],
    ['/p?token', '/p?token=REDACTED'],
    ['/p?token=a&token=b', '/p?token=REDACTED&token=REDACTED'],
    ['/p?token=abc#frag', '/p?token=REDACTED#frag'],
    ['/p?token=%zz', '/p?token=REDACTED'],
    ['/p?tokens=1&monkey=2&keyboard=3', '/p?tokens=1&monkey=2&keyboard=3'],
    ['/p?q=token%3Dabc', '/p?q=token%3Dabc'],
    ['/token/abc?x=1', '/token/abc?x=1'],
    ['/p', '/p'],
    ['/p?', '/p?']
  ]
  for (const [input, output] of rows) t.equal(redact(input), output, input)
})

t.test('the list is configurable and takes globs; an empty list redacts nothing', async (t) => {
  const custom = queryRedactor(['session', 'x-*'])
  t.equal(custom('/p?Session=1&token=2&X-Amz-Signature=3'), '/p?Session=REDACTED&token=2&X-Amz-Signature=REDACTED')
  t.equal(queryRedactor([])('/p?token=1'), '/p?token=1')
})
