/**
 * Reference: a bare node:http server answering every request with the recorded hit response
 * (same status, fields and bytes as cachegate). The ceiling for any Node HTTP server.
 */
import { createServer } from 'node:http'
import { loadResponse } from './response.ts'

const { status, headers, body, port } = loadResponse()
const server = createServer((_req, res) => {
  res.writeHead(status, headers)
  res.end(body)
})
server.keepAliveTimeout = 72_000
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => server.close(() => process.exit(0)))
