/**
 * Reference: a bare Fastify route answering every request with the recorded hit response
 * (same status, fields and bytes as cachegate), with the settings cachegate's public app uses
 * that matter per request (no logger). What Fastify itself costs over node:http.
 */
import Fastify from 'fastify'
import { loadResponse } from './response.ts'

const { status, headers, body, port } = loadResponse()
const app = Fastify({ logger: false })
app.get('/*', (_request, reply) => {
  reply.code(status).headers(headers).send(body)
})
await app.listen({ port, host: '127.0.0.1' })
process.on('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
