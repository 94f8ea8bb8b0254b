/**
 * The response the reference servers answer with: the exact status, fields and body bytes
 * the gateway sent on a cache hit, written to a file by bench/hit.ts.
 */
import { readFileSync } from 'node:fs'

export interface RecordedResponse {
  status: number
  headers: Record<string, string>
  /** base64 */
  body: string
}

export function loadResponse (): { status: number, headers: Record<string, string>, body: Buffer, port: number } {
  const file = process.env.BENCH_RESPONSE
  const port = Number(process.env.BENCH_PORT)
  if (file === undefined || !Number.isInteger(port)) throw new Error('BENCH_RESPONSE and BENCH_PORT must be set')
  const recorded = JSON.parse(readFileSync(file, 'utf8')) as RecordedResponse
  return { status: recorded.status, headers: recorded.headers, body: Buffer.from(recorded.body, 'base64'), port }
}
