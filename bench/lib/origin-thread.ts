/**
 * The benchmark origin (origin.ts) in a worker thread of this process: its own event loop, so
 * the moment it sees a request and the moment its delay ends are not held back by the load
 * generator running in this thread. The stampede benchmark needs that: 200 requests dispatched
 * at once keep this thread busy for milliseconds, and an origin sharing its loop would receive
 * the gateway's one request late and answer late, which would count against the gateway.
 *
 * Counts and answer times are relayed by message; times are on this thread's performance.now()
 * clock. Before a burst, `watch(path, pid)` asks the thread to read that process's CPU time at
 * the moment it answers the path (onAnswer's job in the in-process origin).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { body2k, startOrigin } from './origin.ts'
import { runSeconds } from './processes.ts'

type FromThread =
  | { type: 'ready', url: string }
  | { type: 'received', path: string, at: number }
  | { type: 'answered', path: string, at: number, cpu: number | undefined }
type ToThread = { type: 'watch', path: string, pid: number } | { type: 'close' }

export interface ThreadOrigin {
  url: string
  counts: Map<string, number>
  /** When (performance.now() in this thread) the first request for a path arrived. */
  receivedAt: Map<string, number>
  /** When (performance.now() in this thread) the last response for a path was sent. */
  answeredAt: Map<string, number>
  /** The CPU time (s) of the watched process when the path was answered. */
  cpuAtAnswer: Map<string, number>
  watch: (path: string, pid: number) => void
  close: () => Promise<void>
}

interface Options { delayMs: number, body2k: boolean }

export async function startOriginThread (options: Options): Promise<ThreadOrigin> {
  // A thread does not inherit tsx's loader: its entry registers tsx, then imports this file.
  const entry = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}) })`
  const worker = new Worker(entry, { eval: true, workerData: options })
  const counts = new Map<string, number>()
  const receivedAt = new Map<string, number>()
  const answeredAt = new Map<string, number>()
  const cpuAtAnswer = new Map<string, number>()
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('error', reject)
    worker.on('message', (m: FromThread) => {
      if (m.type === 'ready') resolve(m.url)
      else if (m.type === 'received') {
        counts.set(m.path, (counts.get(m.path) ?? 0) + 1)
        if (!receivedAt.has(m.path)) receivedAt.set(m.path, m.at - performance.timeOrigin)
      } else {
        answeredAt.set(m.path, m.at - performance.timeOrigin)
        if (m.cpu !== undefined) cpuAtAnswer.set(m.path, m.cpu)
      }
    })
  })
  const send = (m: ToThread): void => { worker.postMessage(m) }
  return {
    url,
    counts,
    receivedAt,
    answeredAt,
    cpuAtAnswer,
    watch: (path, pid) => { send({ type: 'watch', path, pid }) },
    close: async () => {
      send({ type: 'close' })
      await new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    }
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  const o = workerData as Options
  const watched = new Map<string, number>()
  const post = (m: FromThread): void => { port.postMessage(m) }
  const origin = await startOrigin({
    delayMs: o.delayMs,
    ...(o.body2k ? { body: body2k } : {}),
    onReceive: (path) => { post({ type: 'received', path, at: performance.timeOrigin + performance.now() }) },
    onAnswer: (path) => {
      const pid = watched.get(path)
      post({ type: 'answered', path, at: performance.timeOrigin + performance.now(), cpu: pid === undefined ? undefined : runSeconds(pid) })
    }
  })
  port.on('message', (m: ToThread) => {
    if (m.type === 'watch') watched.set(m.path, m.pid)
    else origin.close().then(() => { port.close() }, () => { port.close() })
  })
  post({ type: 'ready', url: origin.url })
}
