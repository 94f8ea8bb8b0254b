// Errors written straight to a socket: a real node:http server with the handler, and raw TCP
// clients sending what a hostile or broken client sends.
import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:http'
import { connect, type Socket } from 'node:net'
import { clientErrorHandler, rawError } from '../../src/http/socket-errors.ts'

async function server (t: Test): Promise<number> {
  const s = createServer({ maxHeaderSize: 1024 }, (_req, res) => { res.end('ok') })
  s.on('clientError', clientErrorHandler)
  s.on('connect', (_req: unknown, socket: Socket) => { rawError(socket, 'CG_ERR_METHOD_NOT_ALLOWED') })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => await new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()) }))
  return (s.address() as { port: number }).port
}

async function send (port: number, raw: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => c.write(raw))
    const chunks: Buffer[] = []
    c.on('data', (d: Buffer) => chunks.push(d))
    c.on('end', () => resolve(Buffer.concat(chunks).toString()))
    c.on('error', reject)
  })
}

function parse (response: string): { status: number, json: { statusCode: number, code: string }, close: boolean } {
  const [head = '', body = ''] = response.split('\r\n\r\n')
  return { status: Number(head.split(' ')[1]), json: JSON.parse(body) as { statusCode: number, code: string }, close: /\r\nConnection: close/i.test(head) }
}

t.test('malformed HTTP gets a 400 with the catalogue\'s JSON body and a closed connection', async (t) => {
  const port = await server(t)
  const r = parse(await send(port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n'))
  t.same([r.status, r.json.code, r.json.statusCode, r.close], [400, 'CG_ERR_BAD_REQUEST', 400, true])
})

t.test('headers over the limit get a 431', async (t) => {
  const port = await server(t)
  const r = parse(await send(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(4096)}\r\n\r\n`))
  t.same([r.status, r.json.code], [431, 'CG_ERR_HEADERS_TOO_LARGE'])
})

t.test('CONNECT, a tunnel this proxy does not offer, gets a 405 rather than a dropped connection', async (t) => {
  const port = await server(t)
  const r = parse(await send(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'))
  t.same([r.status, r.json.code], [405, 'CG_ERR_METHOD_NOT_ALLOWED'])
})

t.test('the Content-Length written matches the body', async (t) => {
  const port = await server(t)
  const response = await send(port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n')
  const [head = '', body = ''] = response.split('\r\n\r\n')
  t.equal(Number(/content-length: (\d+)/i.exec(head)?.[1]), Buffer.byteLength(body))
})
