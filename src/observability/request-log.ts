/**
 * The request log line: one JSON line at info per request outcome (style.md habit 9), with
 * query secrets redacted from the URL (observability/redact.ts). The object is not even built
 * when info is off.
 */
import type { RequestOutcome } from './events.ts'
import type { Logger } from './logger.ts'
import type { QueryRedactor } from './redact.ts'

/** Writes one `request` line per outcome. */
export function requestLog (logger: Logger, redact: QueryRedactor): (o: RequestOutcome) => void {
  return (o) => {
    if (!logger.isLevelEnabled('info')) return
    logger.info({
      route: o.route,
      method: o.method,
      url: redact(o.url),
      outcome: o.outcome,
      status: o.status,
      originStatus: o.originStatus,
      cacheStatus: o.cacheStatus,
      ms: Math.round(o.durationMs * 100) / 100
    }, 'request')
  }
}
