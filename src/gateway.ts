/**
 * Composition root: picks the store, the origin client and the clock, and builds the public
 * and admin fastify apps. Reads no process.* (tests build gateways directly; main.ts owns
 * the process).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Socket } from 'node:net'
import { createServer } from 'node:http'
import { FastHit } from './http/fast-hit.ts'
import type { CacheKey } from './cache/key.ts'
import { systemClock, type Clock } from './clock.ts'
import { compileRoutes, type RouteMatcher } from './config/routes.ts'
import type { GatewayConfig } from './config/types.ts'
import { GatewayError } from './errors.ts'
import { ReadThrough } from './lifecycle/read-through.ts'
import { Tasks } from './lifecycle/tasks.ts'
import { causeCode, OriginClient } from './origin/client.ts'
import { proxyPlugin } from './http/proxy.ts'
import { sendError } from './http/respond.ts'
import { createAdminApp } from './http/admin.ts'
import type { OutcomeListener, RequestOutcome } from './observability/events.ts'
import { createLogger, type Logger } from './observability/logger.ts'
import { followingRedactor } from './observability/redact.ts'
import { MemoryStore } from './store/memory.ts'
import { isStoreBypassed } from './store/circuit-breaker.ts'
import { localBackend, makeBackend, redisReady, type Backend } from './backend.ts'
import { clientErrorHandler, rawError } from './http/socket-errors.ts'
import { requestLog } from './observability/request-log.ts'
import type { Store } from './store/store.ts'
import { TieredStore } from './store/tiered.ts'
import { announceInvalidations, Purger, purgeCounts, routeOfKey } from './invalidation/purge.ts'
import { purgeMethodHandler, registerPurgeRoutes } from './http/admin-purge.ts'
import { registerOpsRoutes, reloadFrom, type ReloadResult } from './http/admin-ops.ts'
import { registerWebhookRoutes } from './http/admin-webhooks.ts'
import { explain } from './lifecycle/explain.ts'
import { Health } from './observability/health.ts'
import { GatewayMetrics, MeteredStore, type StoreOp } from './observability/metrics.ts'
import { Forwarder } from './invalidation/forwarder.ts'
import { MemoryOutbox, RedisOutbox } from './invalidation/outbox.ts'
import { BoundedMap, type BoundedMapStats } from './bounded-map.ts'
import { MemoryReplayGuard } from './http/admin-auth.ts'
import { RedisReplayGuard } from './store/redis-replay.ts'

export interface GatewayOptions {
  config: GatewayConfig
  clock?: Clock
  logger?: Logger
  /** Use this store instead of the one the config names (tests, benchmarks); locks and bus are then local. */
  store?: Store
  onOutcome?: OutcomeListener
  /** Random source for TTL jitter and refresh-ahead (tests). */
  random?: () => number
  /** false: no fast path, every request goes through fastify and the lifecycle (tests compare the two). */
  fastPath?: boolean
  /** Reads the configuration again for POST /reload and reloadFromSource(); without it reloads are refused. */
  configSource?: () => Promise<GatewayConfig>
  /** Called after POST /reload applied a new configuration (main.ts passes it on to the other workers). */
  onAdminReload?: () => void
  /** false: no admin listener (every worker but the first). Default true. */
  adminListener?: boolean
  /** Where GET /metrics reads from instead of this gateway's registry (the primary's aggregate of all workers). */
  metricsText?: () => Promise<string>
  /** Waits between CDN purge retries (tests inject one that does not sleep); see invalidation/forwarder.ts. */
  cdnSleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly admin: FastifyInstance
  readonly store: Store
  readonly tasks: Tasks
  readonly logger: Logger
  readonly metrics: GatewayMetrics
  /** CDN purge forwarding; undefined without `cdn` in the config. */
  readonly forwarder: Forwarder | undefined
  readonly health: Health
  /** Sizes of the per-key structures, each bounded in entries and bytes (src/bounded-map.ts). */
  memory(): Record<string, BoundedMapStats>
  config(): GatewayConfig
  /**
   * Swaps in a new validated config for new requests (routes, origins, route options).
   * Listener addresses, the store and cache-wide settings take effect at the next start.
   */
  reload(next: GatewayConfig): void
  /** Reads the configuration from `configSource` and applies it, or refuses it (logged) and keeps the running one. */
  reloadFromSource(): Promise<ReloadResult>
  /** Starts both listeners; returns the bound ports (adminPort 0 without an admin listener). */
  listen(): Promise<{ port: number, adminPort: number }>
  /** Stops accepting, lets in-flight requests and background tasks finish, closes pools and the store. */
  close(): Promise<void>
}

/** Listens, or fails with a message naming the listener and the setting that moves it. */
async function bind (server: FastifyInstance, which: 'public' | 'admin', host: string, port: number, moveWith: string): Promise<void> {
  try {
    await server.listen({ port, host })
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'EADDRINUSE') throw new Error(`the ${which} listener cannot listen on ${host}:${port}: the port is in use by another process; move it with ${moveWith}`, { cause: err })
    if (code === 'EACCES') throw new Error(`the ${which} listener may not listen on ${host}:${port} (ports below 1024 need privileges); move it with ${moveWith}`, { cause: err })
    if (code === 'EADDRNOTAVAIL') throw new Error(`the ${which} listener cannot listen on ${host}:${port}: no network interface has that address`, { cause: err })
    throw err
  }
}

export async function createGateway (options: GatewayOptions): Promise<Gateway> {
  let config = options.config
  let routes: RouteMatcher = compileRoutes(config.routes)
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? createLogger({ level: 'info', pretty: false })
  const backend: Backend = options.store !== undefined ? localBackend(options.store, clock) : makeBackend(config, clock, logger)
  const redisClient = backend.redis
  // Built before anything awaits, so the Redis settings check sees the first 'ready'.
  const health = new Health({
    store: backend.store.kind,
    redis: redisClient,
    logger,
    listening: () => app.server.listening,
    pingTimeout: Math.max(config.redis?.commandTimeout ?? 0, 1000)
  })
  const inner = backend.store
  const metrics = new GatewayMetrics({
    ...(inner instanceof MemoryStore ? { storeStats: () => inner.stats() } : {}),
    ...(redisClient !== undefined ? { redisUp: () => health.redisUp } : {})
  })
  // L1 in front of Redis when a route asks for it (cache.l1MaxBytes, cache.l1MaxTtl; route.l1).
  const invalChannel = `${backend.prefix}inval`
  const tiered = options.store === undefined && config.redis !== undefined && config.cache.l1MaxBytes > 0 && config.routes.some((r) => r.l1)
    ? new TieredStore({
      l2: backend.store,
      clock,
      maxBytes: config.cache.l1MaxBytes,
      maxTtlMs: config.cache.l1MaxTtl,
      maxVariants: config.cache.maxVariants,
      useL1: (url) => routeOfKey(routes, url)?.route.l1 === true,
      bus: backend.bus,
      channel: invalChannel,
      onError: (op, err) => logger.warn({ err: (err as Error).message, op }, 'could not publish an invalidation: other instances keep their L1 copy until l1MaxTtl')
    })
    : undefined
  if (tiered !== undefined) metrics.setL1Bytes(() => tiered.stats().bytes)
  const store: Store = new MeteredStore(tiered ?? backend.store, metrics)
  // A stored entry refused on read (src/cache/entry-check.ts) was a miss and is deleted by its
  // store: counted every time, logged once per key (bounded, src/bounded-map.ts).
  const loggedInvalid = new BoundedMap<string, true>({ maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 })
  store.onInvalidEntry?.((e) => {
    metrics.invalidEntry(e.problem)
    const id = `${e.store}\n${e.url}\n${e.variant}`
    if (loggedInvalid.has(id)) return
    loggedInvalid.set(id, true)
    logger.warn({ url: e.url, variant: e.variant, reason: e.problem, store: e.store, deleted: e.deleted }, 'invalid stored entry: served from the origin and deleted')
  })
  // A TieredStore publishes its own changes; otherwise purges and invalidations announce them.
  const announce = tiered === undefined
    ? async (urls: readonly CacheKey[]) => await announceInvalidations(backend.bus, invalChannel, urls)
      .catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not publish an invalidation'))
    : undefined
  const tasks = new Tasks((name, err) => logger.warn({ err, task: name }, 'background task failed'))
  const origin = new OriginClient(config.routes)
  const listeners: OutcomeListener[] = options.onOutcome !== undefined ? [options.onOutcome] : []

  // Failures that can repeat on every request (an origin down for background refreshes, a Redis
  // stalled for lookups) are counted always and logged at warn at most once per window and
  // subject, with how many went unlogged meanwhile: an outage cannot flood the log.
  const warnLog = new BoundedMap<string, { at: number, suppressed: number }>({ maxEntries: 1000 })
  const rateLimitedWarn = (subject: string, windowMs: number, fields: Record<string, unknown>, message: string): void => {
    const now = clock.now()
    const last = warnLog.peek(subject)
    if (last !== undefined && now - last.at < windowMs) {
      last.suppressed++
      return
    }
    logger.warn({ ...fields, suppressed: last?.suppressed ?? 0 }, message)
    warnLog.set(subject, { at: now, suppressed: 0 })
  }
  const refreshFailed = (route: string): void => {
    rateLimitedWarn(`refresh\n${route}`, 60_000, { route }, 'background refresh failed')
  }
  const readThrough = new ReadThrough({
    store,
    origin,
    clock,
    tasks,
    cache: config.cache,
    onStoreError: (op, err) => {
      // While a breaker is open every request bypasses the store: its opening was logged once.
      // A put runs after the client was answered: the response was sent, only its copy is lost.
      // At most one line a second per operation: a stalled Redis fails every lookup until the
      // breaker opens.
      if (!isStoreBypassed(err)) rateLimitedWarn(`store\n${op}`, 1000, { err: (err as Error).message, op }, op === 'put' ? 'could not store a response (the client was answered; later responses do not claim stored until a write succeeds)' : 'store operation failed; serving from the origin')
      // Store calls are counted by MeteredStore; coordination commands are not store calls.
      if (op === 'lock' || op === 'unlock' || op === 'publish') metrics.storeError(op satisfies StoreOp)
    },
    onEvent: (e) => {
      metrics.lifecycle(e)
      if (e.type === 'refresh' && e.result === 'failed') refreshFailed(e.route)
    },
    locks: backend.locks,
    bus: backend.bus,
    fillChannel: `${backend.prefix}fill`,
    ...(options.random !== undefined ? { random: options.random } : {})
  })

  // onOutcome is defined below; the fast path calls it only once requests arrive.
  const fast = new FastHit({
    config: () => config,
    routes: () => routes,
    store,
    clock,
    onOutcome: (o) => { onOutcome(o) },
    onError: (err) => logger.error({ err }, 'fast path failed: the request went the full way as a miss')
  })
  if (options.fastPath === false) fast.disable()
  const app = Fastify({
    logger: false,
    trustProxy: false,
    return503OnClosing: true,
    bodyLimit: config.limits.maxBodyBytes,
    // Plain fresh hits held in memory are answered before fastify routes them (src/http/fast-hit.ts).
    // Without Host the proxy answers a JSON 400 itself, rather than Node a bare one.
    serverFactory: (handler) => createServer({ maxHeaderSize: config.limits.maxHeaderBytes, requireHostHeader: false }, (req, res) => {
      fast.handle(req, res, handler)
    }),
    clientErrorHandler,
    // The router rejects a path with invalid percent-encoding before any route runs.
    frameworkErrors: (err, request, reply) => {
      const message = err.code === 'FST_ERR_BAD_URL' ? 'The request URL is malformed: the path does not percent-decode to UTF-8' : undefined
      sendError(reply, new GatewayError('CG_ERR_BAD_REQUEST', message), { fwd: 'bypass' })
      // No route ran, so no hook logs this request: its outcome is reported here.
      const sent = reply.getHeader('cache-status')
      onOutcome({ route: undefined, method: request.method, url: (request.raw.url ?? '').split('?')[0] ?? '', outcome: 'error', status: 400, cacheStatus: typeof sent === 'string' ? sent : undefined, originStatus: undefined, collapsed: false, durationMs: 0 })
    },
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: config.limits.maxUrlLength }
  })
  // CONNECT asks for a tunnel, which this proxy does not offer: a 405, not a dropped connection.
  app.server.on('connect', (_request: unknown, socket: Socket) => { rawError(socket, 'CG_ERR_METHOD_NOT_ALLOWED') })

  const invalidate = async (keys: CacheKey[]): Promise<void> => {
    await Promise.all(keys.map(async (k) => await store.deleteUrl(k)))
    await announce?.(keys)
  }

  // CDN purge forwarding (config.cdn): a Redis stream per CDN with Redis, else an in-process queue.
  const forwarder = config.cdn === undefined
    ? undefined
    : new Forwarder({
      cdns: config.cdn,
      outbox: redisClient !== undefined ? new RedisOutbox({ client: redisClient, keyPrefix: backend.prefix }) : new MemoryOutbox(),
      clock,
      logger,
      ...(options.random !== undefined ? { random: options.random } : {}),
      ...(options.cdnSleep !== undefined ? { sleep: options.cdnSleep } : {}),
      onResult: (provider, result) => metrics.cdnPurge(provider, result)
    })
  if (forwarder !== undefined) metrics.setCdnOutboxDepth(async () => await forwarder.depths())

  const purger = new Purger({
    ...(forwarder !== undefined ? { forward: async (p) => await forwarder.forward(p) } : {}),
    store,
    clock,
    routes: () => routes,
    ...(announce !== undefined ? { announce } : {}),
    ...(tiered !== undefined ? { bulk: async (apply) => { await tiered.bulk(apply) } } : {}),
    refresh: async (route, key, path) => await readThrough.refresh(route, key, path),
    background: (name, fn) => tasks.run(name, fn),
    onPurge: (e) => {
      for (const [kind, entries] of purgeCounts(e)) metrics.purge(kind, entries)
      logger.info({ kinds: e.kinds, mode: e.mode, urls: e.urls, purged: e.purged, marked: e.marked, ms: e.durationMs }, 'purge')
    }
  })

  // Query secrets (redactQueryParams) never reach a request line or /explain.
  const redactUrl = followingRedactor(() => config.redactQueryParams)
  const logRequest = requestLog(logger, redactUrl)
  const onOutcome = (o: RequestOutcome): void => {
    logRequest(o)
    metrics.request(o)
    for (const l of listeners) l(o)
  }

  await app.register(proxyPlugin, {
    config: () => config,
    routes: () => routes,
    readThrough,
    origin,
    clock,
    invalidate,
    onOutcome,
    onError: (err, context) => logger.error({ err, context }, 'unexpected error'),
    onEvent: (e) => metrics.lifecycle(e),
    onOriginError: ({ route, method, error }) => {
      const what = error.code === 'CG_ERR_ORIGIN_TIMEOUT' ? 'origin timed out' : error.code === 'CG_ERR_ORIGIN_BAD_RESPONSE' ? 'origin sent a malformed response' : 'origin unreachable'
      const cause = error.cause as Error | undefined
      logger.warn({ route: route.name, method, origin: route.origin, code: causeCode(error) ?? error.code, err: cause?.message ?? error.message }, what)
    },
    purgeMethod: purgeMethodHandler({ config: () => config, routes: () => routes, purger, onError: (err) => logger.error({ err }, 'purge failed') })
  })

  const admin = createAdminApp({ config: () => config, now: () => clock.now() })
  const reloadFromSource = async (): Promise<ReloadResult> => await reloadFrom(options.configSource, config, (next) => gateway.reload(next), logger)
  registerOpsRoutes(admin, {
    admin: () => config.admin,
    readiness: async () => await health.readiness(),
    metrics: async () => ({
      contentType: metrics.contentType,
      text: options.metricsText !== undefined ? await options.metricsText() : await metrics.text()
    }),
    reload: async () => {
      const result = await reloadFromSource()
      if (result.ok) options.onAdminReload?.()
      return result
    },
    explain: async (url, headers) => await explain({ routes, store, decisions: readThrough.decisions, now: clock.now(), redact: redactUrl }, url, headers)
  })
  // Signed purges are refused when replayed: remembered in Redis (every instance) or in this process.
  const replay = redisClient !== undefined
    ? new RedisReplayGuard(redisClient, backend.prefix, Math.max(config.redis?.commandTimeout ?? 0, 1000), (err) => logger.warn({ err: (err as Error).message }, 'could not record a webhook signature in Redis: replays are refused by this instance only'))
    : new MemoryReplayGuard()
  registerPurgeRoutes(admin, { admin: () => config.admin, auth: { now: () => clock.now(), replay }, purger, onError: (err) => logger.error({ err }, 'purge failed') })
  // CMS webhooks (config.webhooks): POST /webhooks/<name>, purging in the background.
  await registerWebhookRoutes(admin, {
    webhooks: () => config.webhooks,
    purger,
    now: () => clock.now(),
    background: (name, fn) => { tasks.run(name, fn) },
    log: logger
  })

  let closed = false
  const gateway: Gateway = {
    app,
    admin,
    store,
    tasks,
    logger,
    metrics,
    health,
    forwarder,
    memory: () => ({ ...readThrough.memory(), fastPathKeys: fast.keyCache(), invalidLogged: loggedInvalid.stats() }),
    config: () => config,
    reload (next) {
      // Everything that can fail is built before anything is swapped: a reload that fails applies nothing.
      const nextRoutes = compileRoutes(next.routes)
      origin.addRoutes(next.routes)
      config = next
      routes = nextRoutes
      fast.reset()
      logger.info({ routes: next.routes.map((r) => r.name) }, 'configuration reloaded')
    },
    reloadFromSource,
    async listen () {
      forwarder?.start()
      const subscribed = readThrough.start().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not subscribe to fill messages'))
      const l1Subscribed = tiered?.start().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not subscribe to invalidations: L1 copies live until l1MaxTtl'))
      if (backend.redis !== undefined && !(await redisReady(backend.redis, 2000))) {
        logger.warn('redis is not reachable yet: serving from the origin until it is')
      } else {
        await subscribed
        await l1Subscribed
      }
      try {
        await bind(app, 'public', config.listen.host, config.listen.port, 'PORT or --port (listen.port in routes.yaml)')
        if (options.adminListener !== false) await bind(admin, 'admin', config.admin.host, config.admin.port, 'ADMIN_PORT (admin.port in routes.yaml)')
      } catch (err) {
        // Half started (the public listener up, Redis connected): nothing may keep running.
        await gateway.close().catch(() => undefined)
        throw err
      }
      const port = (app.server.address() as { port: number }).port
      const adminPort = options.adminListener !== false ? (admin.server.address() as { port: number }).port : 0
      return { port, adminPort }
    },
    async close () {
      if (closed) return
      closed = true
      // /readyz answers 503 from now on, while in-flight requests finish; every request
      // takes the full path, which answers 503 with Connection: close while closing.
      health.stopping()
      fast.disable()
      // server.close() drops the connections idle at that moment; a keep-alive connection whose
      // in-flight response ends later would hold the close until keepAliveTimeout (72 s).
      const reaper = setInterval(() => {
        app.server.closeIdleConnections()
        admin.server.closeIdleConnections()
      }, 50)
      try {
        await app.close()
        await admin.close()
      } finally {
        clearInterval(reaper)
      }
      await tasks.settled()
      await forwarder?.close()
      await origin.close()
      await store.close()
      await backend.close()
    }
  }
  return gateway
}
