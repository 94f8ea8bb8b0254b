// The filter that drops an origin's unsolicited 100 (Continue) responses before undici's
// parser (RFC 9110 §15.2): first its bytes alone, cut at every position, then on real TCP and
// TLS connections through undici.
import t from 'tap'
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { Pool } from 'undici'
import { dropUnsolicitedContinue, InterimFilter } from '../../src/origin/interim-filter.ts'
import { startRawOrigin, writeApart, type RawOrigin } from '../helpers/raw.ts'

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'
const ok = (body: string): string => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`

interface Row {
  name: string
  /** What the origin sends after a request head. */
  sent: string
  /** What undici's parser is to see. */
  seen: string
}

const rows: Row[] = [
  { name: 'a final response passes as it is', sent: ok('hello'), seen: ok('hello') },
  { name: 'a 100 before the final response is dropped', sent: CONTINUE + ok('hello'), seen: ok('hello') },
  { name: 'a 100 with fields is dropped', sent: 'HTTP/1.1 100 Continue\r\nServer: x\r\nX-A: 1\r\n\r\n' + ok('a'), seen: ok('a') },
  { name: 'a 100 without a reason phrase is dropped', sent: 'HTTP/1.1 100\r\n\r\n' + ok('a'), seen: ok('a') },
  { name: 'an HTTP/1.0 100 is dropped', sent: 'HTTP/1.0 100 Continue\r\n\r\n' + ok('a'), seen: ok('a') },
  { name: 'several 100s in a row are dropped', sent: CONTINUE + CONTINUE + CONTINUE + ok('a'), seen: ok('a') },
  {
    name: 'a 103 is passed on and a 100 after it dropped',
    sent: 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n' + CONTINUE + ok('a'),
    seen: 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n' + ok('a')
  },
  { name: 'a 100, a 102 and a 100 leave the 102', sent: CONTINUE + 'HTTP/1.1 102 Processing\r\n\r\n' + CONTINUE + ok('a'), seen: 'HTTP/1.1 102 Processing\r\n\r\n' + ok('a') },
  { name: 'a body holding a 100 response is never touched', sent: ok(CONTINUE + CONTINUE), seen: ok(CONTINUE + CONTINUE) },
  {
    name: 'a chunked body holding a 100 response is never touched',
    sent: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n19\r\n${CONTINUE}\r\n0\r\n\r\n`,
    seen: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n19\r\n${CONTINUE}\r\n0\r\n\r\n`
  },
  { name: 'a 101 is final: what follows is not looked at', sent: 'HTTP/1.1 101 Switching Protocols\r\n\r\n' + CONTINUE, seen: 'HTTP/1.1 101 Switching Protocols\r\n\r\n' + CONTINUE },
  { name: 'a four-digit status is left to undici', sent: 'HTTP/1.1 1000 No\r\n\r\n', seen: 'HTTP/1.1 1000 No\r\n\r\n' },
  { name: 'a status that is not digits is left to undici', sent: 'HTTP/1.1 10x Continue\r\n\r\n', seen: 'HTTP/1.1 10x Continue\r\n\r\n' },
  { name: 'another protocol is left to undici', sent: 'HTTP/2.0 100 Continue\r\n\r\n', seen: 'HTTP/2.0 100 Continue\r\n\r\n' },
  { name: 'garbage is left to undici', sent: 'garbage\r\n\r\n', seen: 'garbage\r\n\r\n' },
  { name: 'a CR LF before a status line stops the filter (undici skips it; a 100 then gets its 502)', sent: '\r\n' + CONTINUE + ok('a'), seen: '\r\n' + CONTINUE + ok('a') },
  { name: 'a 103 with a bare LF stops the filter, and undici refuses it', sent: 'HTTP/1.1 103 Early\n\n' + CONTINUE, seen: 'HTTP/1.1 103 Early\n\n' + CONTINUE },
  { name: 'a status line cut short by the end of the stream is released', sent: 'HTTP/1.1 10', seen: 'HTTP/1.1 10' },
  { name: 'a 100 cut short by the end of the stream is dropped', sent: 'HTTP/1.1 100 Contin', seen: '' }
]

/** Runs the filter over `chunks` after one request head; the bytes emitted and any error. */
function filtered (chunks: Buffer[], filter = new InterimFilter()): { seen: Buffer, error: Error | undefined } {
  const out: Buffer[] = []
  const emit = (b: Buffer): void => { out.push(b) }
  let error = filter.expect()
  for (const chunk of chunks) {
    if (error !== undefined) break
    error = filter.read(chunk, emit)
  }
  filter.end(emit)
  return { seen: Buffer.concat(out), error }
}

t.test('the filter alone, after a request head', async (t) => {
  for (const row of rows) {
    t.test(row.name, async (t) => {
      const bytes = Buffer.from(row.sent, 'latin1')
      const expected = Buffer.from(row.seen, 'latin1')
      const whole = filtered([bytes])
      t.equal(whole.error, undefined)
      t.equal(whole.seen.toString('latin1'), row.seen, 'in one read')
      let wrong = 0
      for (let cut = 1; cut < bytes.length; cut++) {
        const r = filtered([bytes.subarray(0, cut), bytes.subarray(cut)])
        if (r.error !== undefined || !r.seen.equals(expected)) wrong++
      }
      t.equal(wrong, 0, `in two reads, cut at each of ${bytes.length - 1} places`)
      let wrongTwice = 0
      for (let a = 1; a < bytes.length && bytes.length <= 200; a++) {
        for (let b = a + 1; b < bytes.length; b++) {
          const r = filtered([bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)])
          if (r.error !== undefined || !r.seen.equals(expected)) wrongTwice++
        }
      }
      t.equal(wrongTwice, 0, 'in three reads, cut at every pair of places')
      const bytewise = filtered([...bytes].map((b) => Buffer.from([b])))
      t.equal(bytewise.seen.toString('latin1'), row.seen, 'one byte per read')
    })
  }
})

t.test('bytes read before any request head are not looked at (undici refuses them itself)', async (t) => {
  const filter = new InterimFilter()
  const out: Buffer[] = []
  t.equal(filter.read(Buffer.from(CONTINUE), (b) => out.push(b)), undefined)
  t.equal(Buffer.concat(out).toString(), CONTINUE)
})

t.test('a body read after the final status line is handed on as the same buffer, not a copy', async (t) => {
  const filter = new InterimFilter()
  const out: Buffer[] = []
  const emit = (b: Buffer): void => { out.push(b) }
  filter.expect()
  const head = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n')
  const body = Buffer.from(CONTINUE)
  filter.read(head, emit)
  t.ok(filter.passing, 'the filter stops at the final status line')
  filter.read(body, emit)
  t.equal(out[0], head, 'the head chunk itself')
  t.equal(out[1], body, 'the body chunk itself, untouched though it reads like a 100')
})

t.test('each request head starts a new response: a 100 before the second answer on a connection is dropped', async (t) => {
  const filter = new InterimFilter()
  const first = filtered([Buffer.from(ok(CONTINUE))], filter)
  t.equal(first.seen.toString(), ok(CONTINUE))
  const second = filtered([Buffer.from(CONTINUE + ok('two'))], filter)
  t.equal(second.seen.toString(), ok('two'))
})

t.test('bytes of one response still held when the next request starts are never handed to its parse: the connection is to be destroyed', async (t) => {
  const filter = new InterimFilter()
  const out: Buffer[] = []
  const emit = (b: Buffer): void => { out.push(b) }
  t.equal(filter.expect(), undefined, 'nothing held at the first request')
  // The start of a status line, cut by the end of a read: held back until the rest comes.
  t.equal(filter.read(Buffer.from('HTTP/1.1 1'), emit), undefined)
  t.equal(out.length, 0, 'held')
  const broken = filter.expect()
  t.equal(broken?.name, 'HTTPParserError')
  t.equal((broken as { code?: string } | undefined)?.code, 'HPE_INVALID_CONSTANT')
  t.match(broken?.message, /10 bytes of the previous response/)
  filter.end(emit)
  t.equal(out.length, 0, 'the held bytes went nowhere, not even at the end of the stream')
  t.equal(filter.expect(), undefined, 'nothing held any more')
  t.equal(filtered([Buffer.from(CONTINUE + ok('next'))], filter).seen.toString(), ok('next'), 'a new response is filtered from its start')
})

t.test('a 100 with a bare LF is an HPE_CR_EXPECTED parser error', async (t) => {
  const r = filtered([Buffer.from('HTTP/1.1 100 Continue\n\n' + ok('a'))])
  t.equal((r.error as { code?: string } | undefined)?.code, 'HPE_CR_EXPECTED')
  t.equal(r.error?.name, 'HTTPParserError')
})

t.test('a 100 head longer than a head may be is an HPE_HEADER_OVERFLOW parser error, whatever the reads', async (t) => {
  const huge = Buffer.from(`HTTP/1.1 100 Continue\r\nX-Pad: ${'x'.repeat(17_000)}\r\n\r\n` + ok('a'))
  for (const chunks of [[huge], Array.from({ length: Math.ceil(huge.length / 1000) }, (_, i) => huge.subarray(i * 1000, (i + 1) * 1000))]) {
    const r = filtered(chunks)
    t.equal((r.error as { code?: string } | undefined)?.code, 'HPE_HEADER_OVERFLOW')
    t.equal(r.seen.length, 0, 'nothing of it reached the parser')
  }
})

/** A self-signed certificate for 127.0.0.1, made for this run. */
function certificate (t: Test): { key: string, cert: string } {
  const dir = t.testdir({})
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' })
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') }
}

/** How the raw origin answers each request: by its path. */
function answer (socket: Socket, head: string): void {
  const path = head.split(' ')[1] ?? ''
  const body = `body of ${path} `.padEnd(40, '.')
  if (path.startsWith('/split')) {
    writeApart(socket, ['HTTP/1.1 1', '00 Cont', 'inue\r\n', '\r', '\nHTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n', CONTINUE])
  } else if (path.startsWith('/inside')) {
    // The body's second read starts with a 100 response's bytes.
    writeApart(socket, [`HTTP/1.1 200 OK\r\nContent-Length: ${25 + body.length}\r\n\r\n${body}`, CONTINUE])
  } else {
    socket.write(CONTINUE + CONTINUE + ok(body))
  }
}

async function get (pool: Pool, path: string): Promise<{ status: number, body: string }> {
  const res = await pool.request({ path, method: 'GET' })
  return { status: res.statusCode, body: await res.body.text() }
}

async function overConnections (t: Test, origin: RawOrigin, pool: Pool): Promise<void> {
  t.teardown(async () => await pool.close())
  t.same(await get(pool, '/a'), { status: 200, body: 'body of /a '.padEnd(40, '.') }, 'two 100s, then the answer')
  t.same(await get(pool, '/split'), { status: 200, body: CONTINUE }, 'a 100 in five reads, and a body that reads like one')
  t.same(await get(pool, '/inside'), { status: 200, body: 'body of /inside '.padEnd(40, '.') + CONTINUE }, 'a body whose second read is a 100, byte for byte')
  t.equal(origin.connections, 1, 'every request on one kept-alive connection')
  t.equal(origin.requests.length, 3, 'each asked once')
}

t.test('through undici over TCP: 100s dropped, split or not, bodies intact, the connection kept alive', async (t) => {
  const origin = await startRawOrigin(t, (socket, request) => { answer(socket, request.head) })
  await overConnections(t, origin, new Pool(origin.url, { connections: 1, pipelining: 1, connect: dropUnsolicitedContinue({}) }))
})

t.test('through undici over TLS: the same', async (t) => {
  const tls = certificate(t)
  const origin = await startRawOrigin(t, (socket, request) => { answer(socket, request.head) }, { tls })
  await overConnections(t, origin, new Pool(origin.url, { connections: 1, pipelining: 1, connect: dropUnsolicitedContinue({ ca: tls.cert }) }))
})

t.test('a connection the connector did not make is left alone: undici still refuses its 100', async (t) => {
  const origin = await startRawOrigin(t, (socket) => { socket.write(CONTINUE + ok('a')) })
  const plain = new Pool(origin.url)
  t.teardown(async () => await plain.close())
  await t.rejects(get(plain, '/'), { code: 'UND_ERR_SOCKET', message: 'bad response' })
})

t.test('a failed connection reaches undici as it failed: refused, or a certificate it does not trust', async (t) => {
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const refused = new Pool(`http://127.0.0.1:${port}`, { connect: dropUnsolicitedContinue({}) })
  t.teardown(async () => await refused.close())
  await t.rejects(get(refused, '/'), { code: 'ECONNREFUSED' })
  const origin = await startRawOrigin(t, (socket) => { socket.write(ok('a')) }, { tls: certificate(t) })
  const untrusted = new Pool(origin.url, { connect: dropUnsolicitedContinue({}) })
  t.teardown(async () => await untrusted.close())
  await t.rejects(get(untrusted, '/'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })
})
