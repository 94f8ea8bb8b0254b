/**
 * Corrupts encoded entries (src/cache/entry-codec.ts) the way a damaged or hostile Redis value
 * would be: a field rewritten in the meta, the body cut short or altered, the framing broken.
 * Each case names the problem the entry check must report for it.
 */
import type { EntryProblem } from '../../src/cache/entry-check.ts'

const HEADER_BYTES = 8

export function metaOf (value: Buffer): Record<string, unknown> {
  return JSON.parse(value.toString('utf8', HEADER_BYTES, HEADER_BYTES + value.readUInt32BE(4))) as Record<string, unknown>
}

function bodyOf (value: Buffer): Buffer {
  return value.subarray(HEADER_BYTES + value.readUInt32BE(4))
}

/** The value with this meta JSON text (written as given) and this body; the magic kept. */
export function withMetaText (value: Buffer, json: string, body: Buffer = bodyOf(value)): Buffer {
  const meta = Buffer.from(json)
  const head = Buffer.from(value.subarray(0, HEADER_BYTES))
  head.writeUInt32BE(meta.length, 4)
  return Buffer.concat([head, meta, body])
}

/** The value with meta fields replaced (undefined removes one); body and seal kept. */
export function withMeta (value: Buffer, fields: Record<string, unknown>): Buffer {
  return withMetaText(value, JSON.stringify({ ...metaOf(value), ...fields }))
}

export interface Corruption {
  name: string
  problem: EntryProblem
  corrupt: (value: Buffer) => Buffer
}

/** One case per field of the format; the headers of the meta are replaced with `headers`. */
export const CORRUPTIONS: Corruption[] = [
  { name: 'status out of range (1000)', problem: 'status', corrupt: (v) => withMeta(v, { status: 1000 }) },
  { name: 'status out of range (99)', problem: 'status', corrupt: (v) => withMeta(v, { status: 99 }) },
  { name: 'header name invalid', problem: 'header-name', corrupt: (v) => withMeta(v, { headers: { ...(metaOf(v).headers as object), 'bad name': 'x' } }) },
  { name: 'header value with CR LF', problem: 'header-value', corrupt: (v) => withMeta(v, { headers: { ...(metaOf(v).headers as object), 'x-evil': 'a\r\nset-cookie: session=attacker' } }) },
  { name: 'header value with NUL', problem: 'header-value', corrupt: (v) => withMeta(v, { headers: { ...(metaOf(v).headers as object), 'x-evil': 'a\u0000b' } }) },
  { name: 'truncated body', problem: 'body-length', corrupt: (v) => v.subarray(0, v.length - 3) },
  {
    name: 'body altered, same length',
    problem: 'checksum',
    corrupt: (v) => {
      const out = Buffer.from(v)
      out.writeUInt8(out.readUInt8(out.length - 1) ^ 0x20, out.length - 1)
      return out
    }
  },
  { name: 'checksum field altered', problem: 'checksum', corrupt: (v) => withMeta(v, { bodyCrc32: (Number(metaOf(v).bodyCrc32) + 1) % 2 ** 32 }) },
  { name: 'meta JSON malformed', problem: 'format', corrupt: (v) => withMetaText(v, '{"invalidatedAt":0,"url":') },
  { name: 'wrong types (freshness a string)', problem: 'field', corrupt: (v) => withMeta(v, { freshness: '60000' }) },
  { name: 'wrong types (tags an object)', problem: 'field', corrupt: (v) => withMeta(v, { tags: { a: 1 } }) },
  {
    name: 'huge meta length',
    problem: 'format',
    corrupt: (v) => {
      const out = Buffer.from(v)
      out.writeUInt32BE(0xfffffff0, 4)
      return out
    }
  },
  { name: 'url of another key', problem: 'url', corrupt: (v) => withMeta(v, { url: 'http://elsewhere.example/private' }) },
  { name: 'an older format version', problem: 'version', corrupt: (v) => Buffer.concat([Buffer.from('CGE\u0001', 'latin1'), v.subarray(4)]) }
]
