/**
 * pino with the secrets redacted: credentials never reach a log line. Pretty output only
 * when writing to a terminal outside production, and then one line per entry (singleLine):
 * a request is one line in a terminal as it is in JSON.
 */
import pino, { type Logger, type LoggerOptions } from 'pino'
import pinoPretty from 'pino-pretty'

export const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  'token',
  'secret'
]

export interface LoggerSettings {
  level: string
  /** Pretty-print (development in a terminal). */
  pretty: boolean
  destination?: NodeJS.WritableStream
}

export function createLogger (s: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: s.level,
    base: { name: 'cachegate' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime
  }
  if (s.pretty) {
    // In-process and synchronous: a terminal is for development, where order matters more than throughput.
    return pino(options, pinoPretty({
      colorize: s.destination === undefined,
      translateTime: 'SYS:HH:MM:ss.l',
      singleLine: true,
      ignore: 'pid,hostname,name',
      sync: true,
      destination: s.destination ?? 1
    }))
  }
  if (s.destination !== undefined) return pino(options, s.destination)
  return pino(options)
}

export type { Logger }
