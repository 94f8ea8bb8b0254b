/**
 * Language selection: a response stored with `Vary: Accept-Language` and `Content-Language: L`
 * may answer a request whose own Accept-Language value differs, when that request prefers L
 * above every other language it lists. RFC 9111 §4.1 lets a cache normalize selecting header
 * values using knowledge of their semantics; the origin said this content is in L (RFC 9110
 * §8.5) and the client ranks L strictly first (§12.5.4), so an origin negotiating by
 * Accept-Language answers L to it too.
 *
 * Deliberately strict, and different from RFC 4647 matching: tags are compared whole
 * (case-insensitively), so `de-CH` is not `de`; the request must name exactly one range with
 * the highest q (q > 0, no tie, not `*`); the response must name exactly one language; the
 * variant must be selected by Accept-Language alone (no other Vary field, route key header or
 * key cookie). Anything that does not parse selects nothing.
 *
 * How stores use it: a response that qualifies is also stored as the alias of L
 * (`languageAlias`), a variant of its own that no request selects (vary.ts LANGUAGE_ALIAS), so
 * it never replaces the origin's own answer to `Accept-Language: L` nor any other request's
 * variant. A request whose own variant is missing looks at the variant of `Accept-Language: L`
 * for its first language L, then at the alias of L (`languageFallback`), and is answered from
 * what it finds only if that stored entry still says `Content-Language: L` (`speaks`: stored
 * data is untrusted). A response to `Accept-Language: L` itself needs no alias: the fallback
 * reads its variant first.
 */
import type { IncomingHeaders } from './headers.ts'
import { single } from './headers.ts'
import { LANGUAGE_ALIAS, listItems, qvalue, sameVariant, variantValues, type VariantSpec } from './vary.ts'

type Values = Readonly<Record<string, string | null>>

/** RFC 5646 §2.1 language-tag, loosely: subtags of 1 to 8 letters and digits, the first letters only. */
const LANGUAGE_TAG = /^[a-z]{1,8}(?:-[a-z0-9]{1,8})*$/
/** RFC 9110 §12.4.2 weight after its `;` (whitespace is allowed around the `;` only): `q=` and a qvalue. */
const WEIGHT = /^q=(.*)$/

/**
 * The one language range an Accept-Language value prefers above all others (RFC 9110 §12.5.4),
 * lower-case; undefined when none does: a tie at the top, a top of q=0 or `*`, a range named
 * twice, or anything that is not a language range with at most a weight.
 */
export function topLanguage (value: string | readonly string[] | undefined): string | undefined {
  const text = single(value)
  if (text === undefined) return undefined
  const seen = new Set<string>()
  let top: string | undefined
  let topQ = 0
  let tie = false
  for (const { token: range, params } of listItems(text)) {
    // RFC 9110 §5.6.1: empty list elements are ignored.
    if (range === '' && params.length === 0) continue
    if ((range !== '*' && !LANGUAGE_TAG.test(range)) || seen.has(range) || params.length > 1) return undefined
    seen.add(range)
    let q = 1
    if (params.length === 1) {
      const weight = WEIGHT.exec(params[0] ?? '')
      const parsed = weight === null ? undefined : qvalue(weight[1] ?? '')
      if (parsed === undefined) return undefined
      q = parsed
    }
    if (q > topQ) {
      top = range
      topQ = q
      tie = false
    } else if (q === topQ && q > 0) {
      tie = true
    }
  }
  return top === undefined || tie || top === '*' ? undefined : top
}

/** The one language a response says it is in (RFC 9110 §8.5 Content-Language), lower-case; undefined when it names none or several. */
export function contentLanguage (headers: IncomingHeaders): string | undefined {
  const text = single(headers['content-language'])
  if (text === undefined) return undefined
  const tags = text.split(',').map((tag) => tag.trim()).filter((tag) => tag !== '')
  const tag = tags.length === 1 ? (tags[0] ?? '').toLowerCase() : undefined
  return tag !== undefined && LANGUAGE_TAG.test(tag) ? tag : undefined
}

/** Whether a stored response says it is in `tag` (a lower-case tag from topLanguage). */
export function speaks (headers: IncomingHeaders, tag: string): boolean {
  return contentLanguage(headers) === tag
}

/** The variant values of a request naming only `tag`, when Accept-Language alone selects the variant. */
function exactValues (spec: VariantSpec, tag: string): Record<string, string | null> | undefined {
  if (spec.cookies.length !== 0 || spec.headers.length !== 1 || spec.headers[0] !== 'accept-language') return undefined
  return variantValues(spec, { 'accept-language': tag })
}

/** The variant values of the alias of `tag`: a request's values for `tag` alone, and the mark no request's values hold. */
function aliasValues (exact: Values, tag: string): Record<string, string | null> {
  return { ...exact, [LANGUAGE_ALIAS]: tag }
}

/**
 * Where a response is also stored: the alias of its language, or undefined when it does not
 * qualify or answered `Accept-Language: <its language>` itself (`values`, its own variant,
 * are then the ones the fallback reads first).
 */
export function languageAlias (spec: VariantSpec, values: Values, responseHeaders: IncomingHeaders): Record<string, string | null> | undefined {
  const tag = contentLanguage(responseHeaders)
  const exact = tag === undefined ? undefined : exactValues(spec, tag)
  return tag === undefined || exact === undefined || sameVariant(exact, values) ? undefined : aliasValues(exact, tag)
}

/**
 * Where a request whose own variant is missing may look next, in order: the variant of
 * `Accept-Language: L` for its first language L (the origin's own answer to it; left out when
 * it is the request's own variant), then the alias of L, each with the language the entry
 * found there must say it is in. None when the request has no single first language or the
 * variant is not selected by Accept-Language alone. `requestHeaders` are the fields forwarded.
 */
export function languageFallback (spec: VariantSpec, values: Values, requestHeaders: IncomingHeaders): Array<{ values: Record<string, string | null>, tag: string }> {
  const tag = topLanguage(requestHeaders['accept-language'])
  const exact = tag === undefined ? undefined : exactValues(spec, tag)
  if (tag === undefined || exact === undefined) return []
  const alias = { values: aliasValues(exact, tag), tag }
  return sameVariant(exact, values) ? [alias] : [{ values: exact, tag }, alias]
}
