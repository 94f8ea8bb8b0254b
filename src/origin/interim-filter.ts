/**
 * Unsolicited 100 (Continue) responses from origins, dropped before undici's parser sees them.
 *
 * RFC 9110 §15.2: a client must be able to parse one or more 1xx responses received before
 * the final response, even if it did not expect one (101 aside). undici's HTTP/1.1 parser
 * destroys the connection on any 100 (SocketError 'bad response', client-h1.js
 * onHeadersComplete), because it never sends Expect itself, and neither an option nor an
 * interceptor sees the 100 before that. cachegate never forwards a client's Expect
 * (http/proxy.ts), so every 100 an origin sends is unsolicited, and each one cost a 502 and a
 * retry. The origin pools' connector (dropUnsolicitedContinue) therefore filters the bytes each
 * origin connection reads: where a response starts, a whole `HTTP/1.x 100 ...\r\n...\r\n\r\n`
 * head is dropped; any other 1xx head (103 Early Hints) is passed on and skipped; the first
 * final status line ends the filtering until the next request.
 *
 * Where a response starts is taken from undici, not worked out again from the framing: with
 * pipelining 1, undici writes a request only once the previous response has been parsed to its
 * end and whatever the idle connection received meanwhile has been read, and it publishes each
 * request head on the 'undici:client:sendHeaders' diagnostics channel, with its socket, just
 * before writing it. So the first byte read after that message starts the answer to that
 * request, and no byte of a response body is ever looked at: a body holding
 * `HTTP/1.1 100 Continue\r\n\r\n` passes untouched, whatever its framing (Content-Length,
 * chunked, until close, HEAD, 204, 304). A second parser of the framing could disagree with
 * undici's; this one cannot.
 *
 * Cost: bytes enter a Readable through push(), and the filter takes over push on each origin
 * socket (net and TLS alike: Node hands every read of both to push). Outside a response's first
 * bytes (in every body, and in each response after the tenth byte of its status line) a chunk
 * goes to the original push as it is: one branch, no copy. Only the start of a status line
 * split across reads (at most 12 bytes) is held back, copied.
 */
import { subscribe } from 'node:diagnostics_channel'
import { maxHeaderSize } from 'node:http'
import type { Socket } from 'node:net'
import { buildConnector, errors, type DiagnosticsChannel } from 'undici'

const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const ZERO = 0x30
/** RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. */
const HTTP_1 = Buffer.from('HTTP/1.', 'latin1')
/** "HTTP/1.x 1xx" and the byte after it: where a 1xx status code is known. */
const STATUS_LINE_START = 13

/** What the filter hands on to undici's parser. */
export type Emit = (bytes: Buffer) => void

type State =
  /** Not at a response start: every byte goes on. */
  | 'pass'
  /** At a response start: matching a status line. */
  | 'start'
  /** Inside a 100 head: dropping it. */
  | 'drop'
  /** Inside another 1xx head: passing it on, to start again after it. */
  | 'relay'

/** Whether `byte` may stand at offset `at` of the start of a 1xx status line: "HTTP/1.x 1xx" and SP or CR. */
function fitsInterimStatusLine (at: number, byte: number): boolean {
  if (at < HTTP_1.length) return byte === HTTP_1[at]
  if (at === 7) return byte === ZERO || byte === ZERO + 1
  if (at === 8) return byte === SP
  // The status code's first digit: 1 is an interim response (RFC 9110 §15.2), any other final.
  if (at === 9) return byte === ZERO + 1
  if (at < STATUS_LINE_START - 1) return byte >= ZERO && byte <= ZERO + 9
  return byte === SP || byte === CR
}

/**
 * One step of finding the end of a head (the CR LF CR LF after the last field line) with
 * `matched` of those four bytes seen: the new count, 4 at the end, or -1 for a bare LF or a CR
 * without its LF, which undici's parser refuses too (RFC 9112 §2.2).
 */
function headEnd (matched: number, byte: number): number {
  if (matched === 1 || matched === 3) return byte === LF ? matched + 1 : -1
  if (byte === LF) return -1
  if (byte === CR) return matched + 1
  return 0
}

/** The error undici's parser gives a head it refuses (a 502 CG_ERR_ORIGIN_BAD_RESPONSE, not retried). */
function parserError (code: string, what: string): Error {
  const err = new errors.HTTPParserError(`Response does not match the HTTP/1.1 protocol (${what})`)
  err.code = code
  return err
}

/**
 * The byte filter of one connection, without the socket: expect() marks where a response
 * starts, read() takes each chunk read and emits what undici's parser is to see, end()
 * releases what was held back when the stream ends. An error from expect() or read() means
 * the connection must be destroyed.
 */
export class InterimFilter {
  #state: State = 'pass'
  /** 'start': bytes of the status line matched; 'drop' and 'relay': bytes of CR LF CR LF seen. */
  #matched = 0
  /** 'start': the status code so far. */
  #status = 0
  /** 'start': the status line's first bytes from earlier reads, not yet emitted. */
  #held: Buffer[] = []
  /** 'drop': bytes of the 100 head dropped so far. */
  #dropped = 0

  /** True while every byte goes on as it is. */
  get passing (): boolean {
    return this.#state === 'pass'
  }

  /**
   * A request head is about to be written: the next byte read starts its response. Returns an
   * error when bytes of the previous response are still held (the start of a status line not
   * yet handed on): with one request at a time that cannot happen, and handing them to the
   * parse of this request's response would answer it with another response's bytes, so the
   * connection must be destroyed. They are discarded, never emitted.
   */
  expect (): Error | undefined {
    const held = this.#held.reduce((n, bytes) => n + bytes.length, 0)
    this.#held = []
    this.#restart()
    return held === 0 ? undefined : parserError('HPE_INVALID_CONSTANT', `a request sent with ${held} bytes of the previous response unparsed`)
  }

  /**
   * Takes one chunk read from the connection. Returns an error when a 100 head is malformed or
   * longer than a head may be: its start is gone, so the connection must be destroyed.
   */
  read (chunk: Buffer, emit: Emit): Error | undefined {
    if (this.#state === 'pass') {
      emit(chunk)
      return undefined
    }
    // The first byte of chunk not yet emitted or dropped.
    let from = 0
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] ?? 0
      if (this.#state === 'start') {
        const at = this.#matched
        // A final response, or bytes undici will judge: everything goes on from here.
        if (!fitsInterimStatusLine(at, byte)) return this.#handOver(chunk, from, emit)
        if (at < STATUS_LINE_START - 1) {
          if (at >= 9) this.#status = this.#status * 10 + byte - ZERO
          this.#matched++
          continue
        }
        // 101 Switching Protocols is final: undici takes it as an upgrade (or refuses it).
        if (this.#status === 101) return this.#handOver(chunk, from, emit)
        const crlf = byte === CR ? 1 : 0
        if (this.#status === 100) {
          this.#held = []
          this.#state = 'drop'
          this.#dropped = STATUS_LINE_START
          this.#matched = crlf
          from = i + 1
        } else {
          // 102, 103, ...: undici parses these and reports them through onInfo.
          this.#release(emit)
          this.#state = 'relay'
          this.#matched = crlf
        }
      } else if (this.#state === 'drop') {
        const next = headEnd(this.#matched, byte)
        if (next < 0) return parserError('HPE_CR_EXPECTED', 'a 100 (Continue) response with a bare LF or CR')
        if (++this.#dropped > maxHeaderSize) return parserError('HPE_HEADER_OVERFLOW', `a 100 (Continue) response head over ${maxHeaderSize} bytes`)
        if (next === 4) {
          this.#restart()
          from = i + 1
        } else {
          this.#matched = next
        }
      } else {
        const next = headEnd(this.#matched, byte)
        // undici refuses this head: stop looking, and let it.
        if (next < 0) return this.#handOver(chunk, from, emit)
        if (next === 4) {
          emit(chunk.subarray(from, i + 1))
          from = i + 1
          this.#restart()
        } else {
          this.#matched = next
        }
      }
    }
    if (from < chunk.length) {
      // A status line cut by the end of a read: at most 12 bytes, copied so a 64 KiB read buffer is not kept.
      if (this.#state === 'start') this.#held.push(Buffer.from(chunk.subarray(from)))
      else if (this.#state === 'relay') emit(chunk.subarray(from))
    }
    return undefined
  }

  /** The stream ended: a status line cut short goes on, for undici to report. */
  end (emit: Emit): void {
    this.#release(emit)
  }

  #restart (): void {
    this.#state = 'start'
    this.#matched = 0
    this.#status = 0
    this.#dropped = 0
  }

  /** Stops filtering: what is held and the rest of chunk go on, and every byte after them. */
  #handOver (chunk: Buffer, from: number, emit: Emit): undefined {
    this.#release(emit)
    emit(from === 0 ? chunk : chunk.subarray(from))
    this.#state = 'pass'
    return undefined
  }

  #release (emit: Emit): void {
    if (this.#held.length === 0) return
    for (const bytes of this.#held) emit(bytes)
    this.#held = []
  }
}

/** Each filtered socket's hook for the start of a request. */
const expectations = new WeakMap<object, () => void>()

// Process-wide, and published by every undici copy in the process (Node's own fetch too): a
// socket without a filter is not ours and is left alone.
subscribe('undici:client:sendHeaders', (message) => {
  const { socket } = message as DiagnosticsChannel.ClientSendHeadersMessage
  expectations.get(socket)?.()
})

/** Puts an InterimFilter between a connection and undici's parser. */
function filterInterim (socket: Socket): void {
  const filter = new InterimFilter()
  const push = socket.push.bind(socket)
  let pushed = true
  const emit: Emit = (bytes) => {
    pushed = push(bytes)
  }
  socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (filter.passing) return push(chunk, encoding)
    // Nothing emitted (all dropped): the buffer did not grow, keep reading.
    pushed = true
    if (chunk === null) {
      filter.end(emit)
      return push(null)
    }
    if (!Buffer.isBuffer(chunk)) return push(chunk, encoding)
    const broken = filter.read(chunk, emit)
    if (broken !== undefined) {
      socket.destroy(broken)
      return false
    }
    return pushed
  }
  expectations.set(socket, () => {
    const broken = filter.expect()
    if (broken !== undefined) socket.destroy(broken)
  })
}

/**
 * undici's connector (same options) whose HTTP/1.1 connections drop unsolicited 100
 * responses. Only for clients with pipelining 1 (a Pool's default; origin/client.ts sets it).
 */
export function dropUnsolicitedContinue (options: buildConnector.BuildOptions): buildConnector.connector {
  const connect = buildConnector(options)
  return (target, callback) => {
    connect(target, (...result) => {
      // A failed connection calls back with the error alone (no second argument).
      const [err, socket] = result
      // HTTP/2 has no 100 problem (interim responses are HEADERS frames) and must not be filtered.
      if (err === null && (socket as { alpnProtocol?: unknown }).alpnProtocol !== 'h2') filterInterim(socket)
      callback(...result)
    })
  }
}
