// Logs in a terminal: the pretty format writes one line per log call, a request line included,
// with the credentials still redacted.
import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/observability/logger.ts'

function capture (): { stream: Writable, text: () => string } {
  let text = ''
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      text += chunk.toString()
      done()
    }
  })
  return { stream, text: () => text }
}

t.test('the pretty (terminal) format writes each request as one line, not one line per field', async (t) => {
  const out = capture()
  const logger = createLogger({ level: 'info', pretty: true, destination: out.stream })
  logger.info({ route: 'api', method: 'GET', url: 'http://a/p?page=2', outcome: 'miss', status: 200, originStatus: 200, cacheStatus: 'cachegate; fwd=uri-miss; fwd-status=200; stored', ms: 3.21 }, 'request')
  logger.warn({ route: 'api', origin: 'http://127.0.0.1:9', code: 'ECONNREFUSED', nested: { a: 1, b: [1, 2] } }, 'origin unreachable')
  logger.flush()
  const lines = out.text().split('\n').filter((l) => l !== '')
  t.equal(lines.length, 2, 'two calls, two lines')
  t.match(lines[0], /request/)
  t.match(lines[0], /GET/)
  t.match(lines[0], /cachegate; fwd=uri-miss/)
  t.match(lines[1], /ECONNREFUSED/)
})

t.test('the pretty format still redacts credentials', async (t) => {
  const out = capture()
  const logger = createLogger({ level: 'info', pretty: true, destination: out.stream })
  logger.info({ req: { headers: { authorization: 'Bearer s3cret' } }, token: 's3cret-too' }, 'x')
  logger.flush()
  t.notMatch(out.text(), /s3cret/)
})
