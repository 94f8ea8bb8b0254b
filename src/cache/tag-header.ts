/**
 * An entry's tags written in the purge-tag header of the CDN in front (route option
 * `tagHeader`), so the CDN indexes its copy under the same tags cachegate purges by. Pure.
 *
 * Each CDN has its own separator and limits. A tag the CDN could not read as one tag (it holds
 * the separator, whitespace or a character the CDN refuses, or is too long) is left out rather
 * than split into two tags that would purge the wrong things; tags are then taken in order
 * while the header stays within the CDN's limits, and the rest are left out (the CDN would
 * ignore or truncate them anyway). A tag left out can still be purged here, not at the CDN.
 */

export const TAG_HEADERS = ['surrogate-key', 'cache-tag', 'edge-cache-tag'] as const
export type TagHeader = typeof TAG_HEADERS[number]

interface TagFormat {
  separator: string
  /** Characters a tag may hold. */
  tag: RegExp
  /** Longest tag, in characters (every accepted character is one byte). */
  maxTag: number
  /** Longest header value, in bytes. */
  maxHeader: number
  /** Most tags in one header. */
  maxTags: number
}

/** Printable ASCII without space: a tag that survives every hop as one token. */
const VISIBLE = /^[\x21-\x7e]+$/

export const TAG_FORMATS: Readonly<Record<TagHeader, Readonly<TagFormat>>> = {
  // Fastly: space-separated keys; a key of at most 1 KB, the header at most 16 KB.
  // https://www.fastly.com/documentation/reference/http/http-headers/Surrogate-Key
  // https://www.fastly.com/documentation/guides/full-site-delivery/purging/working-with-surrogate-keys
  'surrogate-key': { separator: ' ', tag: VISIBLE, maxTag: 1024, maxHeader: 16_384, maxTags: Infinity },
  // Cloudflare: comma-separated tags of at most 1,024 characters, at most 16 KB of Cache-Tag
  // per response. https://developers.cloudflare.com/cache/how-to/purge-cache/purge-by-tags/
  'cache-tag': { separator: ',', tag: /^[\x21-\x2b\x2d-\x7e]+$/, maxTag: 1024, maxHeader: 16_384, maxTags: Infinity },
  // Akamai: one Edge-Cache-Tag header of at most 128 comma-delimited tags, each at most 128
  // characters of alphanumerics and !#$%'+./^_`|~- (":" "@" "*" "<" ">" "{" "}" "\" refused);
  // 8,192 characters in all. https://techdocs.akamai.com/purge-cache/docs/assign-cache-tags
  // https://techdocs.akamai.com/purge-cache/docs/purge-content-cache-tag
  'edge-cache-tag': { separator: ',', tag: /^[A-Za-z0-9!#$%&'+./^_`|~-]+$/, maxTag: 128, maxHeader: 8192, maxTags: 128 }
}

/** The header value for these tags in this CDN's format; undefined when no tag can be written. */
export function formatTagHeader (tags: readonly string[], header: TagHeader): string | undefined {
  const format = TAG_FORMATS[header]
  const out: string[] = []
  const seen = new Set<string>()
  let bytes = 0
  for (const tag of tags) {
    if (out.length >= format.maxTags) break
    if (seen.has(tag) || tag.length > format.maxTag || !format.tag.test(tag)) continue
    const added = (out.length === 0 ? 0 : format.separator.length) + tag.length
    if (bytes + added > format.maxHeader) break
    seen.add(tag)
    out.push(tag)
    bytes += added
  }
  return out.length === 0 ? undefined : out.join(format.separator)
}
