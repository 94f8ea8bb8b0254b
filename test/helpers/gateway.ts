/**
 * Builds a gateway through the real config loader, on free ports, with a manual clock and
 * the store the test names; everything is closed on teardown.
 */
import type { Test } from 'tap'
import { request as undiciRequest, type Dispatcher } from 'undici'
import { ManualClock } from '../../src/clock.ts'
import { parseConfig } from '../../src/config/load.ts'
import { createGateway, type Gateway } from '../../src/gateway.ts'
import { createLogger } from '../../src/observability/logger.ts'
import type { Store } from '../../src/store/store.ts'
import type { RequestOutcome } from '../../src/observability/events.ts'
import { Writable } from 'node:stream'

export interface GatewayHandle {
  gateway: Gateway
  url: string
  adminUrl: string
  clock: ManualClock
  outcomes: RequestOutcome[]
  logLines: string[]
  get(path: string, headers?: Record<string, string>): Promise<Reply>
  request(path: string, options?: { method?: Dispatcher.HttpMethod, headers?: Record<string, string>, body?: string }): Promise<Reply>
  /** Waits for background work (store writes, refreshes). */
  settled(): Promise<void>
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  header(name: string): string | undefined
}

export interface GatewayOptions {
  /** routes.yaml content as an object (YAML is a superset of JSON). */
  config: Record<string, unknown>
  env?: Record<string, string>
  clock?: ManualClock
  store?: Store
  /** Random source for TTL jitter and refresh-ahead. */
  random?: () => number
  /** false: every request takes the full path (fastify and the lifecycle). */
  fastPath?: boolean
  /** Waits between CDN purge retries (default: real timers). */
  cdnSleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

export async function withGateway (t: Test, options: GatewayOptions): Promise<GatewayHandle> {
  const raw = { ...options.config }
  raw.listen = { host: '127.0.0.1', port: 0, ...(raw.listen as object | undefined) }
  raw.admin = { host: '127.0.0.1', port: 0, ...(raw.admin as object | undefined) }
  const config = parseConfig(JSON.stringify(raw), 'test.yaml', options.env ?? {})
  const clock = options.clock ?? new ManualClock()
  const logLines: string[] = []
  const destination = new Writable({
    write (chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString())
      done()
    }
  })
  const outcomes: RequestOutcome[] = []
  const gateway = await createGateway({
    config,
    clock,
    logger: createLogger({ level: 'info', pretty: false, destination }),
    ...(options.store !== undefined ? { store: options.store } : {}),
    ...(options.random !== undefined ? { random: options.random } : {}),
    ...(options.fastPath !== undefined ? { fastPath: options.fastPath } : {}),
    ...(options.cdnSleep !== undefined ? { cdnSleep: options.cdnSleep } : {}),
    onOutcome: (o) => outcomes.push(o)
  })
  const { port, adminPort } = await gateway.listen()
  t.teardown(async () => await gateway.close())
  const url = `http://127.0.0.1:${port}`
  const doRequest = async (path: string, o: { method?: Dispatcher.HttpMethod, headers?: Record<string, string>, body?: string } = {}): Promise<Reply> => {
    const res = await undiciRequest(url + path, { method: o.method ?? 'GET', headers: o.headers ?? {}, ...(o.body !== undefined ? { body: o.body } : {}) })
    const body = await res.body.text()
    const headers = res.headers as Record<string, string | string[] | undefined>
    return {
      status: res.statusCode,
      headers,
      body,
      header: (name) => {
        const v = headers[name.toLowerCase()]
        return Array.isArray(v) ? v.join(', ') : v
      }
    }
  }
  return {
    gateway,
    url,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    clock,
    outcomes,
    logLines,
    get: async (path, headers) => await doRequest(path, { ...(headers !== undefined ? { headers } : {}) }),
    request: doRequest,
    settled: async () => await gateway.tasks.settled()
  }
}

let keyPrefixes = 0

/**
 * A gateway on the memory store (`redis` undefined), or on that redis-server under a key
 * prefix of its own: the gateways of one test file share its server without seeing each
 * other's entries.
 */
export async function withGatewayOn (t: Test, redis: { url: string } | undefined, options: GatewayOptions): Promise<GatewayHandle> {
  if (redis === undefined) return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `gw${++keyPrefixes}:` } } })
}
