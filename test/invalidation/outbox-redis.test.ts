/**
 * The Redis outbox: a forward accepted by one gateway survives its stop and is delivered by
 * the next gateway on the same Redis; a batch held by an instance that died is claimed by
 * another; each batch goes to one consumer.
 */
import t from 'tap'
import { RedisOutbox, type Job } from '../../src/invalidation/outbox.ts'
import { withGateway } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'
import { reply, startFakeApi } from '../helpers/fake-api.ts'
import { catalog, purge, TOKEN } from '../integration/purge-helpers.ts'

const redis = await startRedis(t)
let prefixN = 0

/** A retry wait that lasts until the gateway closes (so a batch is mid-retry when it stops). */
const untilClosed = async (_ms: number, signal: AbortSignal): Promise<void> => {
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}

t.test('a forward queued by a gateway that stops is delivered by the next gateway on the same Redis', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t, reply(503, { msg: 'try later' }))
  const keyPrefix = `o${prefixN++}:`
  const config = {
    admin: { token: TOKEN },
    redis: { url: redis.url, keyPrefix, commandTimeout: '2s' },
    cdn: [{ provider: 'fastly', service: 'svc', token: 'k', apiBase: api.url }],
    routes: [{ origin: origin.url }]
  }
  const first = await withGateway(t, { config, cdnSleep: untilClosed })
  const res = await purge(first, { tags: ['product-1', 'product-2'] })
  t.match(res.body.cdn, [{ cdn: 'fastly', state: 'queued', message: 'try later' }])
  t.equal(await redis.client().xlen(`${keyPrefix}cdn-outbox:{fastly}`), 1, 'the batch waits in the stream')
  await first.gateway.close()
  t.equal(api.calls.length, 1)

  api.fallback = reply(200, { status: 'ok' })
  const second = await withGateway(t, { config, cdnSleep: async () => undefined })
  await api.answered(2)
  await second.gateway.forwarder?.drained()
  t.equal(api.calls.length, 2)
  t.same(JSON.parse(api.calls[1]?.body ?? ''), { surrogate_keys: ['product-1', 'product-2'] }, 'the same batch, delivered after the restart')
  t.equal(await redis.client().xlen(`${keyPrefix}cdn-outbox:{fastly}`), 0, 'and removed once delivered')
  t.match(await second.gateway.metrics.text(), /cachegate_cdn_outbox_depth\{cdn="fastly"\} 0/)
})

const job = (id: string): Job => ({ id, batch: { kind: 'tags', items: [id], soft: false }, attempts: 0 })

t.test('a batch held by an instance that died is claimed by another after claimAfterMs; each batch goes to one consumer', async (t) => {
  const client = redis.client()
  const keyPrefix = `o${prefixN++}:`
  const dead = new RedisOutbox({ client, keyPrefix, consumer: 'dead', claimAfterMs: 0 })
  const alive = new RedisOutbox({ client, keyPrefix, consumer: 'alive', claimAfterMs: 0 })
  const patient = new RedisOutbox({ client, keyPrefix, consumer: 'patient', claimAfterMs: 60_000 })
  await dead.add('cf', [job('a'), job('b')])
  const held = await dead.next('cf')
  t.equal(held?.job.id, 'a')
  t.equal((await patient.next('cf'))?.job.id, 'b', 'a patient consumer takes the next unread batch, not the held one')
  t.equal(await patient.next('cf'), undefined, 'and leaves a recently held batch alone')
  const claimed = await alive.next('cf')
  t.equal(claimed?.job.id, 'a', 'the held batch is claimed')
  if (claimed !== undefined) await alive.ack('cf', claimed)
  t.equal(await alive.depth('cf'), 1)
})

t.test('a stream entry that is not a batch is reported invalid, not sent', async (t) => {
  const client = redis.client()
  const keyPrefix = `o${prefixN++}:`
  const outbox = new RedisOutbox({ client, keyPrefix })
  await outbox.add('cf', [])
  await client.xadd(outbox.key('cf'), '*', 'job', '{"id": 1, "batch": "DROP"}')
  const d = await outbox.next('cf')
  t.equal(d?.invalid, true)
})
