/**
 * Errors written straight to a socket, where no fastify reply exists: malformed HTTP, headers
 * too large, a method the parser refuses, CONNECT. Each gets the catalogue's JSON error
 * (src/errors.ts) and a closed connection, never a bare close or a hang.
 */
import type { Socket } from 'node:net'
import { STATUS_CODES } from 'node:http'
import { errorBody } from '../errors.ts'

/** Malformed HTTP and oversized headers get the catalogue's JSON error, not a bare close. */
export function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return
  rawError(socket, err.code === 'HPE_HEADER_OVERFLOW' ? 'CG_ERR_HEADERS_TOO_LARGE' : err.code === 'HPE_INVALID_METHOD' ? 'CG_ERR_METHOD_NOT_ALLOWED' : 'CG_ERR_BAD_REQUEST')
}

/** Writes a catalogue error straight to a socket no fastify reply owns, and closes it. */
export function rawError (socket: Socket, code: 'CG_ERR_HEADERS_TOO_LARGE' | 'CG_ERR_METHOD_NOT_ALLOWED' | 'CG_ERR_BAD_REQUEST'): void {
  const body = JSON.stringify(errorBody(code))
  const status = errorBody(code).statusCode
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}
