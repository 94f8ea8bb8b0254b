import t from 'tap'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

t.test('redis', async (t) => {
  const redis = await startRedis(t)
  const origin = await startOrigin(t, json({ id: 1 }, { 'cache-control': 'max-age=60' }))
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: redis.url, keyPrefix: 'a:' } } })
  const first = await gw.get('/p')
  console.log(first.header('cache-status'))
  await gw.settled()
  const second = await gw.get('/p')
  console.log(second.header('cache-status'))
  console.log(gw.logLines.join(''))
})
