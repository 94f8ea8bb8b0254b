/**
 * Error catalogue: every error the gateway answers with has a stable code, an HTTP status
 * and a message. Bodies follow fastify's shape `{statusCode, code, error, message}`.
 * README.md's error table is kept in sync with this list by test/errors.test.ts.
 */
import { STATUS_CODES } from 'node:http'

export const errorCatalogue = {
  CG_ERR_NO_ROUTE: { status: 404, message: 'No route serves this host and path' },
  CG_ERR_ORIGIN_UNREACHABLE: { status: 502, message: 'The origin could not be reached' },
  CG_ERR_ORIGIN_BAD_RESPONSE: { status: 502, message: 'The origin sent a malformed response' },
  CG_ERR_ORIGIN_TIMEOUT: { status: 504, message: 'The origin did not answer in time' },
  CG_ERR_ONLY_IF_CACHED: { status: 504, message: 'only-if-cached was requested and no stored response may be used' },
  CG_ERR_BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  CG_ERR_URI_TOO_LONG: { status: 414, message: 'The request URL is longer than the configured limit' },
  CG_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are larger than the configured limit' },
  CG_ERR_BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than the configured limit' },
  CG_ERR_REQUEST_TIMEOUT: { status: 408, message: 'The request body stopped arriving for longer than the configured limit' },
  CG_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'This method is not supported' },
  CG_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be JSON: send Content-Type: application/json' },
  CG_ERR_PURGE_INVALID: { status: 400, message: 'The purge request is invalid' },
  CG_ERR_ADMIN_UNAUTHORIZED: { status: 401, message: 'An admin token is required: send Authorization: Bearer <token>' },
  CG_ERR_ADMIN_FORBIDDEN: { status: 403, message: 'The admin token or signature is wrong' },
  CG_ERR_ADMIN_DISABLED: { status: 503, message: 'No admin token is configured: set CACHEGATE_ADMIN_TOKEN or admin.token in routes.yaml' },
  CG_ERR_RATE_LIMITED: { status: 429, message: 'Too many admin requests' },
  CG_ERR_WEBHOOK_SIGNATURE: { status: 401, message: 'The webhook signature is missing, wrong or stale' },
  CG_ERR_WEBHOOK_INVALID: { status: 400, message: 'The webhook payload is not a JSON object' },
  CG_ERR_CONFIG_INVALID: { status: 400, message: 'The configuration is invalid' },
  CG_ERR_CONFIG_READ: { status: 500, message: 'The configuration file could not be read' },
  CG_ERR_INTERNAL: { status: 500, message: 'Internal error' }
} as const satisfies Record<string, { status: number, message: string }>

export type ErrorCode = keyof typeof errorCatalogue

export interface ErrorBody {
  statusCode: number
  code: ErrorCode
  error: string
  message: string
}

export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  constructor (code: ErrorCode, message?: string, options?: ErrorOptions) {
    super(message ?? errorCatalogue[code].message, options)
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = errorCatalogue[code].status
  }

  toBody (): ErrorBody {
    return errorBody(this.code, this.message)
  }
}

export function errorBody (code: ErrorCode, message?: string): ErrorBody {
  const statusCode = errorCatalogue[code].status
  return {
    statusCode,
    code,
    error: STATUS_CODES[statusCode] ?? 'Error',
    message: message ?? errorCatalogue[code].message
  }
}
