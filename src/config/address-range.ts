/**
 * IP addresses and CIDR ranges as written in routes.yaml (`trustedProxies`): parsed once at
 * load time, with the reason when a value is not one. Pure; node:net only to recognize addresses.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'

export interface AddressRange {
  /** The network address as written (BlockList masks host bits itself). */
  address: string
  /** Prefix length: 32 (IPv4) or 128 (IPv6) for a single address. */
  prefix: number
  family: 'ipv4' | 'ipv6'
}

/** What a valid value looks like, for messages. */
export const ADDRESS_RANGE_EXAMPLE = 'an IP address or CIDR range such as "10.0.0.0/8" or "2001:db8::/32"'

/** An address range, or what was expected instead (a phrase for "expected …, got …"). */
export function parseAddressRange (text: string): AddressRange | { expected: string } {
  const slash = text.indexOf('/')
  const address = slash === -1 ? text : text.slice(0, slash)
  // Zone ids ("fe80::1%eth0") name an interface of this host, not an address a peer has.
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) && !address.includes('%') ? 'ipv6' : undefined
  if (family === undefined) return { expected: ADDRESS_RANGE_EXAMPLE }
  const max = family === 'ipv4' ? 32 : 128
  if (slash === -1) return { address, prefix: max, family }
  const digits = text.slice(slash + 1)
  const prefix = /^(?:0|[1-9]\d{0,2})$/.test(digits) ? Number(digits) : Number.NaN
  if (!(prefix <= max)) return { expected: `a prefix length from 0 to ${max} after an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address` }
  return { address, prefix, family }
}

const matchers = new WeakMap<readonly string[], (peer: string) => boolean>()

/**
 * Whether a peer address is in a list of addresses and ranges (`trustedProxies`,
 * `purgeMethod.allow`), compiled once per list. The list was validated at load: a value that
 * slipped through matches nobody rather than throwing. An IPv4-mapped IPv6 peer
 * (`::ffff:10.0.0.1`) matches IPv4 entries; a peer that is not an address matches nothing.
 */
export function addressMatcher (texts: readonly string[]): (peer: string) => boolean {
  let match = matchers.get(texts)
  if (match === undefined) {
    const list = new BlockList()
    for (const text of texts) {
      const range = parseAddressRange(text)
      if (!('expected' in range)) list.addSubnet(range.address, range.prefix, range.family)
    }
    match = texts.length === 0
      ? () => false
      : (peer) => {
          const address = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(peer)?.[1] ?? peer
          const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined
          return family !== undefined && list.check(address, family)
        }
    matchers.set(texts, match)
  }
  return match
}
