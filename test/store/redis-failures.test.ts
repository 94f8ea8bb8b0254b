// What a failed Redis call says about Redis, and how the reads and writes breakers count it.
import t from 'tap'
import { StoreBypassedError } from '../../src/store/circuit-breaker.ts'
import { judgeReads, judgeWrites, redisFailureKind } from '../../src/store/redis-failures.ts'

const replyError = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' })
const timedOut = (): Error => new Error('Command timed out')

t.test('redisFailureKind tells an unreachable Redis from a refusing one', async (t) => {
  const rows: Array<[unknown, string]> = [
    [timedOut(), 'down'],
    [new Error("Stream isn't writeable and enableOfflineQueue options is false"), 'down'],
    [new Error('Connection is closed.'), 'down'],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'down'],
    [replyError("OOM command not allowed when used memory > 'maxmemory'."), 'refused'],
    [replyError("READONLY You can't write against a read only replica."), 'refused'],
    [replyError('MISCONF Redis is configured to save RDB snapshots'), 'refused'],
    [replyError('LOADING Redis is loading the dataset in memory'), 'down'],
    [replyError('CLUSTERDOWN The cluster is down'), 'down'],
    [replyError('ERR user_script:1: Script attempted to access a non local key'), 'answered'],
    [new RangeError('ttlMs must be positive'), 'other'],
    [new TypeError('unexpected Redis reply'), 'other'],
    [new StoreBypassedError('x'), 'bypassed'],
    ['a string', 'down']
  ]
  for (const [err, kind] of rows) t.equal(redisFailureKind(err), kind, `${String((err as Error).message ?? err)} is ${kind}`)
})

t.test('the reads breaker counts no answer; the writes breaker counts a refused write; neither counts bad input or a bypass', async (t) => {
  const rows: Array<[string, unknown, string, string]> = [
    ['a timeout', timedOut(), 'failure', 'neutral'],
    ['OOM', replyError('OOM command not allowed'), 'success', 'failure'],
    ['a script error', replyError('ERR user_script:1: boom'), 'success', 'success'],
    ['LOADING', replyError('LOADING Redis is loading'), 'failure', 'neutral'],
    ['bad input', new RangeError('ttlMs'), 'neutral', 'neutral'],
    ['a bypass', new StoreBypassedError('store'), 'neutral', 'neutral']
  ]
  for (const [name, err, reads, writes] of rows) {
    t.equal(judgeReads(err), reads, `${name}: reads ${reads}`)
    t.equal(judgeWrites(err), writes, `${name}: writes ${writes}`)
  }
})
