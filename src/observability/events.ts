/**
 * One outcome per request: the logger writes one JSON line from it, metrics count it,
 * and Cache-Status was formatted from the same fields.
 */
export type OutcomeKind = 'hit' | 'stale' | 'revalidated' | 'miss' | 'pass' | 'error'

export interface RequestOutcome {
  route: string | undefined
  method: string
  /** Normalized cache key (or the raw path when none could be made). */
  url: string
  outcome: OutcomeKind
  status: number
  cacheStatus: string | undefined
  originStatus: number | undefined
  collapsed: boolean
  durationMs: number
}

export type OutcomeListener = (o: RequestOutcome) => void
