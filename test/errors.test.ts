import t from 'tap'
import { readFileSync } from 'node:fs'
import { errorBody, errorCatalogue, GatewayError, type ErrorCode } from '../src/errors.ts'

t.test('the README error table lists exactly the catalogue, with the same statuses', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const rows = new Map<string, number>()
  for (const m of readme.matchAll(/^\|\s*`(CG_ERR_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)) rows.set(m[1] as string, Number(m[2]))
  const catalogue = new Map(Object.entries(errorCatalogue).map(([code, e]) => [code, e.status]))
  t.same(Object.fromEntries(rows), Object.fromEntries(catalogue))
})

t.test('error bodies have fastify\'s shape', async (t) => {
  for (const code of Object.keys(errorCatalogue) as ErrorCode[]) {
    const body = errorBody(code)
    t.equal(body.code, code)
    t.equal(body.statusCode, errorCatalogue[code].status)
    t.type(body.error, 'string')
    t.ok(body.message.length > 0)
  }
  const e = new GatewayError('CG_ERR_NO_ROUTE', 'No route for x')
  t.same(e.toBody(), { statusCode: 404, code: 'CG_ERR_NO_ROUTE', error: 'Not Found', message: 'No route for x' })
})
