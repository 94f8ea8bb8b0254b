// The request log line: one JSON line per outcome, query secrets redacted, nothing at warn.
import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/observability/logger.ts'
import { queryRedactor } from '../../src/observability/redact.ts'
import { requestLog } from '../../src/observability/request-log.ts'
import type { RequestOutcome } from '../../src/observability/events.ts'

function capture (level: string): { lines: string[], log: (o: RequestOutcome) => void } {
  const lines: string[] = []
  const destination = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done() } })
  const logger = createLogger({ level, pretty: false, destination })
  return { lines, log: requestLog(logger, queryRedactor(['token'])) }
}

const outcome: RequestOutcome = { route: 'api', method: 'GET', url: 'http://shop.example/a?token=s3cr3t&x=1', outcome: 'miss', status: 200, cacheStatus: 'cachegate; fwd=uri-miss', originStatus: 200, collapsed: false, durationMs: 12.3456 }

t.test('one JSON line per outcome, with the fields of the outcome and the duration rounded', async (t) => {
  const { lines, log } = capture('info')
  log(outcome)
  t.equal(lines.length, 1)
  const line = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>
  t.match(line, { msg: 'request', route: 'api', method: 'GET', outcome: 'miss', status: 200, originStatus: 200, cacheStatus: 'cachegate; fwd=uri-miss', ms: 12.35 })
})

t.test('a query secret never reaches the line', async (t) => {
  const { lines, log } = capture('info')
  log(outcome)
  t.notMatch(lines[0], /s3cr3t/)
  t.match(lines[0], /token=REDACTED/)
  t.match(lines[0], /x=1/)
})

t.test('nothing is written when info is off', async (t) => {
  const { lines, log } = capture('warn')
  log(outcome)
  t.same(lines, [])
})
