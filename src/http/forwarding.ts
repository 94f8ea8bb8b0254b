/**
 * The request fields the origin receives. Computed once per request (proxy.ts) and used for
 * every origin request made for it (cache fill, revalidation, pass-through) and, by the
 * read-through lifecycle, for the variant the answer is stored under: the key records what
 * the origin saw.
 *
 * A client speaks only for itself. Fields by which one proxy tells the next where a request
 * came from (client address, scheme, host, port, path prefix) or asks it to treat it as
 * another request (method and URL overrides) are stripped unless the route puts them in its
 * key; an origin that believed them would build its answer for one client from them and the
 * cache would share it with all. X-Forwarded-For and Forwarded are kept only from a peer in
 * `trustedProxies`.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { single, withoutHopByHop } from '../cache/headers.ts'
import { addressMatcher } from '../config/address-range.ts'
import type { GatewayConfig, RouteConfig } from '../config/types.ts'
import { VIA } from './respond.ts'

/**
 * Request fields that can change an origin's answer without being part of the key, never
 * taken from a client: stripped before forwarding unless the route keys on them (cache
 * poisoning). X-Forwarded-For, -Proto and -Host are set by the gateway itself.
 */
export const UNKEYED_HEADERS = [
  // Host, scheme, port and path a proxy in front claims the request had.
  'x-forwarded-host', 'x-forwarded-scheme', 'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-server',
  'x-forwarded-ssl', 'front-end-https', 'x-url-scheme', 'x-forwarded-path', 'x-host', 'x-original-host',
  'forwarded',
  // The client's address as a proxy in front saw it.
  'x-real-ip', 'true-client-ip',
  // Another URL or method than the request line's.
  'x-original-url', 'x-rewrite-url', 'x-original-path', 'x-override-url',
  'x-http-method-override', 'x-http-method', 'x-method-override'
]

/** What the config says about forwarding, compiled once per loaded config. */
export interface ForwardingPolicy {
  /** Fields never forwarded unless a route keys on them (lower-case). */
  readonly strip: ReadonlySet<string>
  /** Whether a peer address is a trusted proxy. */
  trusted: (peer: string) => boolean
}

const policies = new WeakMap<Pick<GatewayConfig, 'trustedProxies' | 'stripHeaders'>, ForwardingPolicy>()

/** The forwarding policy of a config (cached per config object: a reload makes a new one). */
export function forwardingPolicy (config: Pick<GatewayConfig, 'trustedProxies' | 'stripHeaders'>): ForwardingPolicy {
  let policy = policies.get(config)
  if (policy === undefined) {
    policy = {
      strip: new Set([...UNKEYED_HEADERS, ...config.stripHeaders]),
      trusted: addressMatcher(config.trustedProxies)
    }
    policies.set(config, policy)
  }
  return policy
}

/** Per policy and route: the names dropped from a trusted and from an untrusted peer's request. */
const dropSets = new WeakMap<ForwardingPolicy, WeakMap<RouteConfig, { trusted: ReadonlySet<string>, untrusted: ReadonlySet<string> }>>()
function dropFor (policy: ForwardingPolicy, route: RouteConfig, trusted: boolean): ReadonlySet<string> {
  let perRoute = dropSets.get(policy)
  if (perRoute === undefined) {
    perRoute = new WeakMap()
    dropSets.set(policy, perRoute)
  }
  let sets = perRoute.get(route)
  if (sets === undefined) {
    const untrusted = new Set(['host', ...[...policy.strip].filter((name) => !route.key.headers.includes(name))])
    const fromProxy = new Set(untrusted)
    fromProxy.delete('forwarded')
    sets = { trusted: fromProxy, untrusted }
    perRoute.set(route, sets)
  }
  return trusted ? sets.trusted : sets.untrusted
}

export interface ForwardRequest {
  /** The client's request fields as Node parsed them (lower-case names). */
  headers: IncomingHttpHeaders
  route: RouteConfig
  policy: ForwardingPolicy
  /** The address of the peer that connected to us (not anything it claims). */
  peer: string
  scheme: string
  host: string
}

/** RFC 7239 §6: a node as a Forwarded `for=` value (IPv6 bracketed and quoted). */
function forwardedNode (peer: string): string {
  return peer.includes(':') ? `"[${peer}]"` : peer
}

/**
 * The fields sent to the origin for a client request: hop-by-hop fields and those the
 * client's Connection names removed (RFC 9110 §7.6.1), unkeyed forwarding fields stripped,
 * X-Forwarded-For/-Proto/-Host and Via set.
 */
export function forwardHeaders (req: ForwardRequest): Record<string, string | string[]> {
  const { route, peer } = req
  const trusted = req.policy.trusted(peer)
  const out = withoutHopByHop(req.headers, dropFor(req.policy, route, trusted))
  for (const name of Object.keys(out)) {
    // nginx, Apache httpd and gunicorn drop these by default: CGI-style origins (PHP, WSGI,
    // Rack) read X_Tenant and X-Tenant as one variable, so an underscore spelling would reach
    // the origin as a key or Vary field the key never recorded. Only a keyed name is kept.
    if (name.includes('_') && !route.key.headers.includes(name)) delete out[name]
  }
  // What is left of the client's chain after Connection: kept only from a trusted proxy.
  const chain = trusted ? single(out['x-forwarded-for']) : undefined
  out['x-forwarded-for'] = chain !== undefined && chain.trim() !== '' ? `${chain}, ${peer}` : peer
  if (trusted && !route.key.headers.includes('forwarded')) {
    const forwarded = single(out.forwarded)
    if (forwarded !== undefined && forwarded.trim() !== '') out.forwarded = `${forwarded}, for=${forwardedNode(peer)}`
  }
  out['x-forwarded-proto'] = req.scheme
  if (!route.key.headers.includes('x-forwarded-host')) out['x-forwarded-host'] = req.host
  const via = single(out.via)
  out.via = via !== undefined ? `${via}, ${VIA}` : VIA
  return out
}
