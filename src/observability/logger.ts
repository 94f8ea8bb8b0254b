/**
 * pino with the secrets redacted: credentials never reach a log line. Pretty output only
 * when writing to a terminal outside production.
 */
import pino, { type Logger, type LoggerOptions } from 'pino'

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
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } })
  }
  if (s.destination !== undefined) return pino(options, s.destination)
  return pino(options)
}

export type { Logger }
