/**
 * The admin bearer token policy, applied by the process (src/main.ts) to the configuration it
 * is about to start, check or reload with: a token guards purges and reloads, so a short one
 * or a well-known placeholder (the `change-me` of an example file) is refused rather than run.
 * Gateways built directly (tests, embedding) are not held to it.
 */

export const MIN_ADMIN_TOKEN_LENGTH = 16

/**
 * Placeholders seen in example files and tutorials, compared case-insensitively with `-`, `_`,
 * `.` and spaces removed, so `Change_Me` and `CHANGE-ME` are refused too.
 */
const PLACEHOLDERS = [
  'changeme', 'changemeplease', 'changethis', 'changeit', 'replaceme', 'secret', 'mysecret', 'supersecret',
  'token', 'mytoken', 'admintoken', 'secrettoken', 'apitoken', 'admin', 'administrator', 'password', 'passw0rd',
  'letmein', 'default', 'example', 'test', 'testing', 'placeholder', 'xxx', 'todo', 'fixme',
  'cachegate', 'cachegateadmintoken', 'yourtokenhere', 'yoursecrethere', 'insertyourtokenhere'
]

const squeeze = (token: string): string => token.toLowerCase().replace(/[\s._-]+/g, '')

/** Why `token` may not guard the admin API, or undefined when it may. */
export function adminTokenProblem (token: string): string | undefined {
  const advice = 'use at least 16 random characters, e.g. the output of `openssl rand -hex 32`'
  const core = squeeze(token)
  // One character repeated (`xxxxxxxxxxxxxxxx`) or counting digits (`1234567890123456`) is as guessable.
  if (PLACEHOLDERS.includes(core) || /^(.)\1*$/.test(core) || '12345678901234567890'.startsWith(core) || '01234567890123456789'.startsWith(core)) {
    return `"${token}" is a placeholder, not a secret: ${advice}`
  }
  if (token.length < MIN_ADMIN_TOKEN_LENGTH) {
    return `too short (${token.length} character${token.length === 1 ? '' : 's'}; at least ${MIN_ADMIN_TOKEN_LENGTH}): ${advice}`
  }
  return undefined
}
