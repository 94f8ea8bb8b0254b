/**
 * RFC 8941 Dictionary parsing, as much as targeted cache-control fields need (RFC 9213 §2.1):
 * members and their bare items or inner lists; parameters are parsed (so they must be valid)
 * and dropped. Strict by design: anything RFC 8941 §4.2 would fail on returns undefined.
 */

export type BareItem =
  | { type: 'integer', value: number }
  | { type: 'decimal', value: number }
  | { type: 'string', value: string }
  | { type: 'token', value: string }
  | { type: 'bytes', value: string }
  | { type: 'boolean', value: boolean }

export type Member = BareItem | { type: 'inner-list', value: BareItem[] }

const KEY_START = /[a-z*]/
const KEY_CHAR = /[a-z0-9_\-.*]/
const TOKEN_START = /[A-Za-z*]/
const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/
const BASE64_CHAR = /[A-Za-z0-9+/=]/
const DIGIT = /[0-9]/

class Parser {
  i = 0
  constructor (readonly s: string) {}

  peek (): string | undefined { return this.s[this.i] }
  skipSp (): void { while (this.s[this.i] === ' ') this.i++ }
  skipOws (): void { while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++ }

  key (): string | undefined {
    const c = this.peek()
    if (c === undefined || !KEY_START.test(c)) return undefined
    const start = this.i
    while (this.i < this.s.length && KEY_CHAR.test(this.s[this.i] as string)) this.i++
    return this.s.slice(start, this.i)
  }

  bareItem (): BareItem | undefined {
    const c = this.peek()
    if (c === undefined) return undefined
    if (c === '-' || DIGIT.test(c)) return this.number()
    if (c === '"') return this.string()
    if (TOKEN_START.test(c)) return this.token()
    if (c === ':') return this.bytes()
    if (c === '?') return this.boolean()
    return undefined
  }

  // §4.2.4: at most 15 integer digits; a decimal has 1-12 integer and 1-3 fraction digits.
  number (): BareItem | undefined {
    const start = this.i
    if (this.peek() === '-') this.i++
    const intStart = this.i
    while (this.i < this.s.length && DIGIT.test(this.s[this.i] as string)) this.i++
    const intDigits = this.i - intStart
    if (intDigits === 0) return undefined
    if (this.peek() !== '.') {
      if (intDigits > 15) return undefined
      return { type: 'integer', value: Number(this.s.slice(start, this.i)) }
    }
    if (intDigits > 12) return undefined
    this.i++
    const fracStart = this.i
    while (this.i < this.s.length && DIGIT.test(this.s[this.i] as string)) this.i++
    const fracDigits = this.i - fracStart
    if (fracDigits < 1 || fracDigits > 3) return undefined
    return { type: 'decimal', value: Number(this.s.slice(start, this.i)) }
  }

  // §4.2.5: printable ASCII; a backslash escapes only '"' and '\'.
  string (): BareItem | undefined {
    this.i++
    let out = ''
    while (this.i < this.s.length) {
      const c = this.s[this.i++] as string
      if (c === '\\') {
        const next = this.s[this.i++]
        if (next !== '"' && next !== '\\') return undefined
        out += next
      } else if (c === '"') {
        return { type: 'string', value: out }
      } else {
        const code = c.charCodeAt(0)
        if (code < 0x20 || code > 0x7e) return undefined
        out += c
      }
    }
    return undefined
  }

  token (): BareItem {
    const start = this.i
    this.i++
    while (this.i < this.s.length && TOKEN_CHAR.test(this.s[this.i] as string)) this.i++
    return { type: 'token', value: this.s.slice(start, this.i) }
  }

  bytes (): BareItem | undefined {
    this.i++
    const start = this.i
    while (this.i < this.s.length && BASE64_CHAR.test(this.s[this.i] as string)) this.i++
    if (this.peek() !== ':') return undefined
    const value = this.s.slice(start, this.i)
    this.i++
    return { type: 'bytes', value }
  }

  boolean (): BareItem | undefined {
    this.i++
    const c = this.s[this.i++]
    if (c === '1') return { type: 'boolean', value: true }
    if (c === '0') return { type: 'boolean', value: false }
    return undefined
  }

  /** §4.2.3.2: `;key[=bare-item]`, repeated. Values are checked, then dropped. */
  parameters (): boolean {
    while (this.peek() === ';') {
      this.i++
      this.skipSp()
      if (this.key() === undefined) return false
      if (this.peek() === '=') {
        this.i++
        if (this.bareItem() === undefined) return false
      }
    }
    return true
  }

  /** §4.2.1.2: `(item item ...)` followed by parameters. */
  innerList (): Member | undefined {
    this.i++
    const items: BareItem[] = []
    while (this.i < this.s.length) {
      this.skipSp()
      if (this.peek() === ')') {
        this.i++
        return this.parameters() ? { type: 'inner-list', value: items } : undefined
      }
      const item = this.bareItem()
      if (item === undefined || !this.parameters()) return undefined
      items.push(item)
      const c = this.peek()
      if (c !== ' ' && c !== ')') return undefined
    }
    return undefined
  }
}

/**
 * RFC 8941 §4.2.2 Dictionary: members in order; a repeated key keeps its last value (§3.2).
 * undefined when the text is not a valid Dictionary.
 */
export function parseDictionary (text: string): Map<string, Member> | undefined {
  const p = new Parser(text.replace(/^ +| +$/g, ''))
  const out = new Map<string, Member>()
  if (p.s === '') return out
  while (p.i < p.s.length) {
    const key = p.key()
    if (key === undefined) return undefined
    let member: Member | undefined = { type: 'boolean', value: true }
    if (p.peek() === '=') {
      p.i++
      member = p.peek() === '(' ? p.innerList() : p.bareItem()
      if (member === undefined) return undefined
      if (member.type !== 'inner-list' && !p.parameters()) return undefined
    } else if (!p.parameters()) {
      return undefined
    }
    out.delete(key)
    out.set(key, member)
    p.skipOws()
    if (p.i >= p.s.length) return out
    if (p.peek() !== ',') return undefined
    p.i++
    p.skipOws()
    if (p.i >= p.s.length) return undefined
  }
  return out
}
