import t from 'tap'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway } from '../helpers/gateway.ts'

t.test('a cacheable response is a MISS first and a HIT after', async (t) => {
  const origin = await startOrigin(t, json({ id: 1, name: 'Teapot' }, { 'cache-control': 'max-age=60' }))
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }] } })
  const first = await gw.get('/products/1')
  t.equal(first.status, 200)
  t.same(JSON.parse(first.body), { id: 1, name: 'Teapot' })
  t.match(first.header('cache-status'), /^cachegate; fwd=uri-miss; fwd-status=200; stored$/)
  await gw.settled()
  gw.clock.advance(5000)
  const second = await gw.get('/products/1')
  t.equal(second.status, 200)
  t.equal(second.body, first.body)
  t.match(second.header('cache-status'), /^cachegate; hit; ttl=55$/)
  t.equal(second.header('age'), '5')
  t.equal(origin.count('/products/1'), 1)
})
