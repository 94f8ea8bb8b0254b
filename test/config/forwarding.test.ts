import t from 'tap'
import type { Test } from 'tap'
import { parseAddressRange } from '../../src/config/address-range.ts'
import { ConfigError, parseConfig } from '../../src/config/load.ts'
import { forwardingPolicy } from '../../src/http/forwarding.ts'

const yaml = (...lines: string[]): string => lines.join('\n') + '\n'

function problemsOf (t: Test, text: string): string[] {
  try {
    parseConfig(text, 'routes.yaml', {})
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  t.fail('the configuration was accepted')
  return []
}

t.test('trustedProxies and stripHeaders default to empty: no peer is trusted, only the built-in list is stripped', async (t) => {
  const config = parseConfig(yaml('routes: [{ origin: "http://a" }]'), 'routes.yaml', {})
  t.strictSame(config.trustedProxies, [])
  t.strictSame(config.stripHeaders, [])
  const policy = forwardingPolicy(config)
  for (const peer of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '10.0.0.1']) t.notOk(policy.trusted(peer), `${peer} is not trusted`)
})

t.test('trustedProxies takes IPv4 and IPv6 addresses and CIDR ranges; stripHeaders is lower-cased', async (t) => {
  const config = parseConfig(yaml(
    'trustedProxies: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32", "::1", 0.0.0.0/0]',
    'stripHeaders: [X-Debug-User]',
    'routes: [{ origin: "http://a" }]'
  ), 'routes.yaml', {})
  t.strictSame(config.trustedProxies, ['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1', '0.0.0.0/0'])
  t.strictSame(config.stripHeaders, ['x-debug-user'])
  t.ok(forwardingPolicy(config).strip.has('x-debug-user'))
  t.ok(forwardingPolicy(config).strip.has('x-forwarded-host'), 'the built-in list stays')
})

t.test('a peer is trusted only when it falls in a listed range, IPv4-mapped IPv6 peers included', async (t) => {
  const policy = forwardingPolicy({ trustedProxies: ['10.1.0.0/16', '192.0.2.7', '2001:db8::/32'], stripHeaders: [] })
  const rows: Array<[string, boolean]> = [
    ['10.1.2.3', true],
    ['10.2.0.1', false],
    ['::ffff:10.1.2.3', true],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['2001:db8:1::9', true],
    ['2001:db9::1', false],
    ['', false]
  ]
  for (const [peer, trusted] of rows) t.equal(policy.trusted(peer), trusted, `${peer === '' ? '(no address)' : peer}: ${trusted ? 'trusted' : 'not trusted'}`)
})

t.test('a bad trustedProxies entry is refused at load with its place and what is wrong with it', async (t) => {
  const rows: Array<[string, string, string]> = [
    ['a prefix too long for IPv4', '10.0.0.0/33', 'expected a prefix length from 0 to 32 after an IPv4 address, got "10.0.0.0/33"'],
    ['a prefix too long for IPv6', '"2001:db8::/129"', 'expected a prefix length from 0 to 128 after an IPv6 address, got "2001:db8::/129"'],
    ['a prefix that is not a number', '10.0.0.0/eight', 'expected a prefix length from 0 to 32 after an IPv4 address, got "10.0.0.0/eight"'],
    ['an empty prefix', '10.0.0.0/', 'expected a prefix length from 0 to 32 after an IPv4 address, got "10.0.0.0/"'],
    ['a prefix with a leading zero', '10.0.0.0/08', 'expected a prefix length from 0 to 32 after an IPv4 address, got "10.0.0.0/08"'],
    ['a host name', 'proxy.internal', 'expected an IP address or CIDR range such as "10.0.0.0/8" or "2001:db8::/32", got "proxy.internal"'],
    ['a short address', '10.0.0/8', 'expected an IP address or CIDR range such as "10.0.0.0/8" or "2001:db8::/32", got "10.0.0/8"'],
    ['an IPv6 zone id', '"fe80::1%eth0"', 'expected an IP address or CIDR range such as "10.0.0.0/8" or "2001:db8::/32", got "fe80::1%eth0"'],
    ['a number', '10', 'expected an IP address or CIDR range such as "10.0.0.0/8" or "2001:db8::/32", got 10']
  ]
  for (const [name, value, message] of rows) {
    t.strictSame(problemsOf(t, yaml(`trustedProxies: [127.0.0.1, ${value}]`, 'routes: [{ origin: "http://a" }]')),
      [`routes.yaml:1:29: trustedProxies[1]: ${message}`], name)
  }
  t.strictSame(problemsOf(t, yaml('trustedProxies: 10.0.0.0/8', 'routes: [{ origin: "http://a" }]')),
    ['routes.yaml:1:17: trustedProxies: expected a list of IP addresses or CIDR ranges, got "10.0.0.0/8"'])
})

t.test('a stripHeaders entry that is not a header name is refused at load', async (t) => {
  t.strictSame(problemsOf(t, yaml('stripHeaders: ["x debug"]', 'routes: [{ origin: "http://a" }]')),
    ['routes.yaml:1:16: stripHeaders[0]: expected a header name such as "x-tenant", got "x debug"'])
})

t.test('parseAddressRange reads single addresses as /32 and /128', async (t) => {
  t.strictSame(parseAddressRange('192.0.2.1'), { address: '192.0.2.1', prefix: 32, family: 'ipv4' })
  t.strictSame(parseAddressRange('::1'), { address: '::1', prefix: 128, family: 'ipv6' })
  t.strictSame(parseAddressRange('10.0.0.0/0'), { address: '10.0.0.0', prefix: 0, family: 'ipv4' })
})
