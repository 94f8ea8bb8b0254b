/**
 * Turns an Answer into the downstream response: headers as the route wants them emitted,
 * Age (RFC 9111 §5.1), Cache-Status (RFC 9211), client conditionals and ranges served
 * from stored bodies, and errors in the catalogue's JSON shape.
 */
import type { FastifyReply } from 'fastify'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { TARGETED_FIELDS } from '../cache/cache-control.ts'
import { formatCacheStatus, type CacheStatus } from '../cache/cache-status.ts'
import { clientNotModified, NOT_MODIFIED_FIELDS } from '../cache/conditional.ts'
import type { CacheEntry, HeaderMap } from '../cache/entry.ts'
import { HOP_BY_HOP, parseTags, TAG_FIELDS, type IncomingHeaders } from '../cache/headers.ts'
import { formatTagHeader } from '../cache/tag-header.ts'
import { decideRange } from '../cache/range.ts'
import type { RouteConfig } from '../config/types.ts'
import { errorBody, GatewayError } from '../errors.ts'
import type { Answer } from '../lifecycle/read-through.ts'
import { BoundedMap } from '../bounded-map.ts'

export const VIA = '1.1 cachegate'

/**
 * RFC 8297: relays an origin's 103 Early Hints to the client before the final response, with
 * its Link fields only (other fields of an interim response are the origin's business). None
 * for HTTP/1.0 clients (RFC 9110 §15.2), none once the response has started; a Link that Node
 * refuses to write (not a valid Link) is dropped: a hint is optional by nature.
 */
export function earlyHintsRelay (req: IncomingMessage, res: ServerResponse): ((status: number, headers: Record<string, string | string[]>) => void) | undefined {
  if (req.httpVersionMajor < 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor < 1)) return undefined
  return (status, headers) => {
    const link = headers.link
    if (status !== 103 || link === undefined || res.headersSent || res.writableEnded) return
    try {
      res.writeEarlyHints({ link: typeof link === 'string' ? link : [...link] })
    } catch {
      // Node validates the Link value before writing anything: nothing was sent.
    }
  }
}

/**
 * Fields never sent downstream as received from the origin or the store. The origin's Age is
 * kept (RFC 9111 §5.1): a response forwarded on a miss is as old as the origin says, and
 * answers from the store set their own Age.
 */
function dropSet (route: RouteConfig | undefined): Set<string> {
  const drop = new Set<string>([...HOP_BY_HOP, 'cache-status', ...TARGETED_FIELDS.filter((f) => f !== 'cdn-cache-control')])
  if (route?.keepTagHeaders !== true) for (const f of TAG_FIELDS) drop.add(f)
  // The CDN tag header is always cachegate's own, written from the entry's tags.
  if (route?.tagHeader !== undefined) drop.add(route.tagHeader)
  return drop
}

const dropSets = new WeakMap<RouteConfig, Set<string>>()
function dropFor (route: RouteConfig): Set<string> {
  let s = dropSets.get(route)
  if (s === undefined) {
    s = dropSet(route)
    dropSets.set(route, s)
  }
  return s
}

/**
 * The origin's fields as they go downstream for this route (targeted and tag fields removed,
 * Cache-Control replaced if configured, the tags in the route's CDN tag header). `tags`: the
 * stored entry's; a response not (yet) stored has the tags of its own fields, as it would be
 * stored with.
 */
export function downstreamHeaders (headers: IncomingHeaders, route: RouteConfig, tags?: readonly string[]): HeaderMap {
  const drop = dropFor(route)
  const out: HeaderMap = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || drop.has(name)) continue
    out[name] = typeof value === 'string' ? value : [...value]
  }
  if (route.downstreamCacheControl !== undefined) out['cache-control'] = route.downstreamCacheControl
  if (route.tagHeader !== undefined) {
    const value = formatTagHeader(tags ?? parseTags(headers), route.tagHeader)
    if (value !== undefined) out[route.tagHeader] = value
  }
  return out
}

/**
 * An entry's downstream fields are computed once: per stored object (the memory store hands
 * out the same object) and per stored version (a store that decodes a new object on every
 * read, like Redis, hands out equal versions: same URL, variant, request and response times,
 * status, body length and ETag; anything less could pair one response's fields with
 * another's body).
 */
const entryHeaders = new WeakMap<CacheEntry, { route: RouteConfig, headers: HeaderMap }>()
const versionHeaders = new BoundedMap<string, { route: RouteConfig, stamp: string, headers: HeaderMap }>({
  maxEntries: 10_000,
  maxBytes: 16 * 1024 * 1024,
  sizeOf: (v) => v.stamp.length * 2 + JSON.stringify(v.headers).length * 2
})
export function headersOfEntry (entry: CacheEntry, route: RouteConfig): HeaderMap {
  const cached = entryHeaders.get(entry)
  if (cached?.route === route) return cached.headers
  const version = `${entry.url}\n${JSON.stringify(entry.vary)}`
  const stamp = `${entry.requestTime} ${entry.responseTime} ${entry.status} ${entry.body.length} ${String(entry.headers.etag)}`
  const known = versionHeaders.peek(version)
  if (known !== undefined && known.route === route && known.stamp === stamp) {
    entryHeaders.set(entry, { route, headers: known.headers })
    return known.headers
  }
  const headers = downstreamHeaders(entry.headers, route, entry.tags)
  headers['content-length'] = String(entry.body.length)
  entryHeaders.set(entry, { route, headers })
  versionHeaders.set(version, { route, stamp, headers })
  return headers
}

/**
 * The fields every answer from a stored entry adds to the entry's own: Age (RFC 9111 §5.1,
 * whole seconds), Via and Cache-Status (RFC 9211). One builder for the fast path and the full
 * path, so a hit is the same bytes whichever path answered it.
 */
export function storedAnswerFields (ageMs: number, cacheStatus: string): { age: string, via: string, 'cache-status': string } {
  return { age: String(Math.floor(ageMs / 1000)), via: VIA, 'cache-status': cacheStatus }
}

/**
 * What answering from a stored object takes, computed once per object and route: whether it
 * has variants, and its downstream fields as the flat [name, value, …] list writeHead takes,
 * with three pairs at the end (Age, Via, Cache-Status) whose values are set per answer. The
 * list is shared by every answer from the object: writeHead turns it into the header block at
 * once and keeps no reference (one thread writes one answer at a time).
 */
export interface EntryForm { route: RouteConfig, varies: boolean, list: string[], age: number, cacheStatus: number }
const forms = new WeakMap<CacheEntry, EntryForm>()
export function entryForm (entry: CacheEntry, route: RouteConfig): EntryForm {
  const cached = forms.get(entry)
  if (cached?.route === route) return cached
  const list: string[] = []
  for (const [name, value] of Object.entries(headersOfEntry(entry, route))) {
    if (typeof value === 'string') list.push(name, value)
    else for (const v of value) list.push(name, v)
  }
  const added = storedAnswerFields(0, '')
  list.push('age', added.age, 'via', added.via, 'cache-status', added['cache-status'])
  const form = { route, varies: Object.keys(entry.vary).length > 0, list, age: list.length - 5, cacheStatus: list.length - 1 }
  forms.set(entry, form)
  return form
}

/**
 * Writes a stored object's whole answer (its status, fields and body) straight to Node's
 * response: one header block and one write. The fast path and the full path both answer
 * through it, so a hit is the same bytes whichever path answered it. Throws, with nothing
 * sent, when Node refuses a field.
 */
export function writeEntryAnswer (res: ServerResponse, method: string, entry: CacheEntry, form: EntryForm, ageMs: number, cacheStatus: string): void {
  const added = storedAnswerFields(ageMs, cacheStatus)
  const list = form.list
  list[form.age] = added.age
  list[form.cacheStatus] = added['cache-status']
  res.writeHead(entry.status, list)
  res.end(method === 'HEAD' ? undefined : entry.body)
}

export function sendAnswer (reply: FastifyReply, method: string, requestHeaders: IncomingHeaders, route: RouteConfig, answer: Answer): void {
  if (answer.kind === 'error') {
    sendError(reply, answer.error, answer.cacheStatus)
    return
  }
  const cacheStatus = formatCacheStatus(answer.cacheStatus)
  if (answer.kind === 'stream') {
    const headers = downstreamHeaders(answer.headers, route)
    if (answer.status === 200 && clientNotModified(headers, requestHeaders)) {
      answer.body.destroy()
      send304(reply, headers, cacheStatus, undefined)
      return
    }
    reply.code(answer.status).headers(headers).header('via', VIA).header('cache-status', cacheStatus)
    if (method === 'HEAD') {
      answer.body.resume()
      reply.send()
      return
    }
    reply.send(answer.body)
    return
  }

  const { entry } = answer
  const added = storedAnswerFields(answer.age, cacheStatus)
  const age = added.age
  const headers = headersOfEntry(entry, route)
  if (entry.status === 200 && clientNotModified(entry.headers, requestHeaders)) {
    send304(reply, headers, cacheStatus, age)
    return
  }
  if (entry.status === 200 && requestHeaders.range !== undefined) {
    const range = decideRange(requestHeaders, entry.headers, entry.body.length)
    if (range.kind === 'partial') {
      reply.code(206).headers(headers).headers({
        'content-range': `bytes ${range.start}-${range.end}/${entry.body.length}`,
        'content-length': String(range.end - range.start + 1),
        age,
        via: VIA,
        'cache-status': cacheStatus
      })
      reply.send(method === 'HEAD' ? undefined : entry.body.subarray(range.start, range.end + 1))
      return
    }
    if (range.kind === 'unsatisfiable') {
      reply.code(416).headers({ 'content-range': `bytes */${entry.body.length}`, age, via: VIA, 'cache-status': cacheStatus })
      reply.send()
      return
    }
  }
  // Straight to Node, as the fast path answers: fastify's send would add nothing here (the
  // fields are complete) but its cost. onResponse hooks still run on 'finish'.
  try {
    writeEntryAnswer(reply.raw, method, entry, entryForm(entry, route), answer.age, cacheStatus)
  } catch {
    // Node refused a field: nothing was sent (stored data is checked, so this is a bug).
    for (const name of reply.raw.getHeaderNames()) reply.raw.removeHeader(name)
    sendError(reply, new GatewayError('CG_ERR_INTERNAL'))
    return
  }
  reply.hijack()
}

function send304 (reply: FastifyReply, headers: HeaderMap, cacheStatus: string, age: string | undefined): void {
  reply.code(304)
  for (const name of NOT_MODIFIED_FIELDS) {
    const v = headers[name]
    if (v !== undefined) reply.header(name, v)
  }
  if (age !== undefined) reply.header('age', age)
  reply.header('via', VIA).header('cache-status', cacheStatus)
  reply.send()
}

export function sendError (reply: FastifyReply, error: GatewayError, cacheStatus: CacheStatus = {}): void {
  reply.code(error.statusCode)
    .header('content-type', 'application/json; charset=utf-8')
    .header('cache-status', formatCacheStatus({ detail: error.code.replace('CG_ERR_', '').toLowerCase().replace(/_/g, '-'), ...cacheStatus }))
    .header('cache-control', 'no-store')
    .send(JSON.stringify(errorBody(error.code, error.message)))
}
