/**
 * What a failed Redis call says about Redis, and how each of the two breakers of one Redis
 * (store/guard.ts) counts it:
 * - `reads` counts a call that did not get an answer (timeout, connection refused or closed,
 *   cluster down);
 * - `writes` counts a write that Redis answered with a refusal (`OOM command not allowed`
 *   under maxmemory with noeviction, READONLY replica, MISCONF), so a full Redis keeps serving
 *   hits while writes are skipped, instead of shipping every body to be refused.
 */
import { StoreBypassedError, type Verdict } from './circuit-breaker.ts'

/**
 * What a failed call says about Redis:
 * - `down`: no answer (command timeout, connection refused or closed, cluster down, loading);
 * - `refused`: Redis answered and refused a write (full, read-only, cannot persist);
 * - `answered`: Redis answered with another error (a script error): it is up;
 * - `bypassed`: a breaker refused the call;
 * - `other`: not a Redis failure (bad input caught before sending).
 */
export type FailureKind = 'down' | 'refused' | 'answered' | 'bypassed' | 'other'

const REFUSED = /^(OOM|READONLY|MISCONF|NOREPLICAS)\b/
const UNAVAILABLE = /^(LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|MOVED|ASK)\b/

export function redisFailureKind (err: unknown): FailureKind {
  if (err instanceof StoreBypassedError) return 'bypassed'
  if (!(err instanceof Error)) return 'down'
  if (err.name === 'ReplyError') {
    if (REFUSED.test(err.message)) return 'refused'
    return UNAVAILABLE.test(err.message) ? 'down' : 'answered'
  }
  // checkPut and reply checks in the stores throw these before or after talking to Redis.
  if (err instanceof TypeError || err instanceof RangeError) return 'other'
  // "Command timed out", "Stream isn't writeable…", "Connection is closed.", MaxRetriesPerRequestError,
  // ClusterAllFailedError, socket errors.
  return 'down'
}

/** The reads breaker: no answer is a failure; a refusal or a script error is an answer, so Redis is up. */
export function judgeReads (err: unknown): Verdict {
  const kind = redisFailureKind(err)
  return kind === 'down' ? 'failure' : kind === 'refused' || kind === 'answered' ? 'success' : 'neutral'
}

/** The writes breaker: a refused write is a failure; unreachability is the reads breaker's business. */
export function judgeWrites (err: unknown): Verdict {
  const kind = redisFailureKind(err)
  return kind === 'refused' ? 'failure' : kind === 'answered' ? 'success' : 'neutral'
}
