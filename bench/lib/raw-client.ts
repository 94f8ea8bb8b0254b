/**
 * A lean HTTP/1.1 client for bursts: keep-alive connections that write a prebuilt GET and read
 * its response (Content-Length or chunked), timing each request from the moment its bytes are
 * handed to the socket to its last body byte. The stampede benchmark sends 200 requests at
 * once; a general-purpose client spends milliseconds of its own on such a burst before the last
 * request leaves (undici: about 17 ms for 200 on this machine, seen with strace on the
 * gateway), and a request timed from before that queue counts the client's cost as the
 * gateway's latency.
 */
import { connect, type Socket } from 'node:net'

export interface RawResult {
  /** Status code, 0 when the connection failed or closed before a whole response. */
  status: number
  /** The Cache-Status field ('' when absent). */
  cacheStatus: string
  /** performance.now() when the request's bytes were written. */
  start: number
  /** performance.now() when the last byte of the response was read. */
  end: number
}

interface Pending { start: number, resolve: (r: RawResult) => void }

const HEAD_END = Buffer.from('\r\n\r\n')

export class RawConnection {
  readonly #socket: Socket
  readonly #host: string
  #buffered: Buffer = Buffer.alloc(0)
  #pending: Pending | undefined

  private constructor (socket: Socket, host: string) {
    this.#socket = socket
    this.#host = host
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk])
      this.#parse()
    })
    const fail = (): void => {
      const p = this.#pending
      this.#pending = undefined
      p?.resolve({ status: 0, cacheStatus: '', start: p.start, end: performance.now() })
    }
    socket.on('error', fail)
    socket.on('close', fail)
  }

  static async open (url: string): Promise<RawConnection> {
    const { hostname, port, host } = new URL(url)
    const socket = connect(Number(port), hostname)
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
    return new RawConnection(socket, host)
  }

  /** One GET at a time per connection (the benchmark's clients are one request each). */
  async get (path: string): Promise<RawResult> {
    if (this.#pending !== undefined) throw new Error('RawConnection: one request at a time')
    return await new Promise<RawResult>((resolve) => {
      const start = performance.now()
      this.#pending = { start, resolve }
      this.#socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.#host}\r\n\r\n`)
    })
  }

  close (): void {
    this.#socket.destroy()
  }

  #parse (): void {
    const p = this.#pending
    if (p === undefined) return
    const headEnd = this.#buffered.indexOf(HEAD_END)
    if (headEnd === -1) return
    const head = this.#buffered.subarray(0, headEnd).toString('latin1')
    const bodyStart = headEnd + 4
    let end: number | undefined
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1]
    if (length !== undefined) {
      if (this.#buffered.length >= bodyStart + Number(length)) end = bodyStart + Number(length)
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      end = chunkedEnd(this.#buffered, bodyStart)
    } else {
      end = bodyStart
    }
    if (end === undefined) return
    this.#buffered = this.#buffered.subarray(end)
    this.#pending = undefined
    p.resolve({ status: Number(head.slice(9, 12)), cacheStatus: /\r\ncache-status: *([^\r]*)/i.exec(head)?.[1] ?? '', start: p.start, end: performance.now() })
  }
}

/** Where a chunked body that starts at `at` ends (after its last chunk and trailers), or undefined while incomplete. */
function chunkedEnd (buf: Buffer, at: number): number | undefined {
  let i = at
  for (;;) {
    const line = buf.indexOf('\r\n', i)
    if (line === -1) return undefined
    const size = parseInt(buf.subarray(i, line).toString('latin1'), 16)
    if (!Number.isFinite(size)) throw new Error('RawConnection: malformed chunk size')
    if (size === 0) {
      const trailerEnd = buf.indexOf(HEAD_END, line)
      if (buf.subarray(line, line + 4).equals(HEAD_END)) return line + 4
      return trailerEnd === -1 ? undefined : trailerEnd + 4
    }
    i = line + 2 + size + 2
    if (i > buf.length) return undefined
  }
}
