import { STATUS_CODES } from 'node:http'
import createError from '@fastify/error'
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable } from '../db/errors.js'
import type { MaintenanceController } from '../maintenance/index.js'
import {
  CsrfError, databaseUnavailable, ERRORS, ExclusiveError, InternalError, InvalidInputError, NotFoundError, StateUnavailableError, TooLargeError,
  UNAVAILABLE_RETRY_AFTER_S, UnsupportedMediaTypeError,
} from '../errors.js'

declare module './view.js' {
  interface Pages {
    error: { statusCode: number, code: string, message: string, fields: Record<string, string> | undefined }
  }
}

/** JSON for API clients (`/api/*`, `/healthz`, or an Accept header that prefers JSON), else HTML. */
export function wantsJson (request: FastifyRequest): boolean {
  if (request.url.startsWith('/api/') || request.url === '/healthz') return true
  const accept = request.headers.accept
  return accept !== undefined && accept.includes('application/json') && !accept.includes('text/html')
}

/** Extra fields that an error carries to the client: `fields` of a 400, the state of a 409. */
const DETAIL_KEYS = ['fields', 'maintainer', 'state'] as const

/**
 * The root error handler: deliberate errors (an error of the registry, or a status below 500)
 * are shown as they are; anything else is logged and answered with a generic message, never a
 * stack trace. The answer is Fastify's error shape in JSON, or the error page in HTML.
 */
const errorPlugin: FastifyPluginAsync = async function errorPlugin (fastify) {
  fastify.setErrorHandler(async function handleError (error: FastifyError, request, reply) {
    const shown = describeError(error)
    if (shown.error instanceof StateUnavailableError) {
      // One line per refused request, without a stack: an outage answers many of them.
      request.log.warn({ code: shown.code, cause: describeCause(error) }, 'the database is unavailable')
    } else if (shown.statusCode >= 500 && !isDeliberate(error)) {
      request.log.error({ err: error }, 'request failed')
    } else if (shown.statusCode >= 500) {
      request.log.info({ code: shown.code }, shown.message)
    }
    return sendError(request, reply, shown)
  })

  fastify.setNotFoundHandler(async function notFound (request, reply) {
    return sendError(request, reply, describeError(new NotFoundError(`There is nothing at ${request.url}`) as FastifyError))
  })
}

function describeCause (error: Error): string {
  let cause: unknown = error
  while ((cause as { cause?: unknown }).cause instanceof Error) cause = (cause as { cause: Error }).cause
  return (cause as Error).message
}

type RegisteredError = Error & { code: string, statusCode: number }

export interface ShownError {
  /** The error the client is told about: the error itself, or the registry's that stands for it. */
  error: Error
  statusCode: number
  code: string
  message: string
  details: Record<string, unknown>
}

const REGISTERED: ReadonlyArray<abstract new (...args: never[]) => Error> = Object.values(ERRORS)

/** Thrown on purpose: an error of the registry. */
function isDeliberate (error: FastifyError): boolean {
  return REGISTERED.some((Registered) => error instanceof Registered)
}

// @fastify/csrf-protection does not export its errors; @fastify/error matches a class by its
// code, also across copies of itself, so these stand for them.
const CsrfMissingSecret = createError('FST_CSRF_MISSING_SECRET', 'Missing csrf secret', 403)
const CsrfInvalidToken = createError('FST_CSRF_INVALID_TOKEN', 'Invalid csrf token', 403)

// The answers that are the same for every request are built once.
const CSRF_REFUSED = shownAs(new CsrfError())
const INTERNAL = shownAs(new InternalError())
const UNAVAILABLE = shownAs(databaseUnavailable(undefined))
const TOO_LARGE = shownAs(new TooLargeError())
const UNSUPPORTED_MEDIA_TYPE = shownAs(new UnsupportedMediaTypeError())

/** What the client is told about an error: its status, code, message and details. */
export function describeError (error: FastifyError): ShownError {
  if (error.validation !== undefined) {
    // Schema checks name the bad field too, like the site's own validation does.
    const fields: Record<string, string> = {}
    for (const problem of error.validation) {
      const missing = (problem.params as { missingProperty?: string }).missingProperty
      const field = missing ?? problem.instancePath.replace(/^\//, '').replaceAll('/', '.')
      if (field !== '' && fields[field] === undefined) fields[field] = problem.message ?? 'is invalid'
    }
    return shownAs(new InvalidInputError(error.message), { fields })
  }
  if (error instanceof CsrfInvalidToken || error instanceof CsrfMissingSecret) return CSRF_REFUSED
  const deliberate = isDeliberate(error)
  // A lost or refused connection, a timeout, a full disk: a clear 503, never a 500 or the
  // driver's message (which names the database server).
  if (!deliberate && isDatabaseUnavailable(error)) return UNAVAILABLE
  const statusCode = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (!deliberate) {
    if (statusCode >= 500) return INTERNAL
    // Fastify's own 4xx (a body too large or not JSON, an unknown content type, a malformed
    // URL) answer with a code of the registry; the message says what was wrong.
    if (statusCode === 413) return TOO_LARGE
    if (statusCode === 415) return UNSUPPORTED_MEDIA_TYPE
    if (statusCode === 400) return shownAs(new InvalidInputError(error.message))
  }
  const details: Record<string, unknown> = {}
  for (const key of DETAIL_KEYS) {
    if (key in error) details[key] = (error as unknown as Record<string, unknown>)[key]
  }
  return { error, statusCode, code: error.code ?? 'QUIESCE_INTERNAL', message: error.message, details }
}

/**
 * Fastify's `frameworkErrors`: errors raised before a request reaches a route (a malformed
 * URL). No hook has run and the reply has no decorators, so the answer is built here: the
 * error's JSON, or a line of text for a browser, with the site's mode as on every response.
 */
export function answerFrameworkError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const shown = describeError(error)
  const maintenance = request.server.maintenance as MaintenanceController | undefined
  if (maintenance !== undefined) reply.header('quiesce-mode', maintenance.state.mode)
  reply.code(shown.statusCode).header('x-content-type-options', 'nosniff')
  if (wantsJson(request)) {
    reply.send({ statusCode: shown.statusCode, code: shown.code, error: httpReason(shown.statusCode), message: shown.message, ...shown.details })
    return
  }
  reply.type('text/plain; charset=utf-8').send(`${httpReason(shown.statusCode)} (${shown.code}): ${shown.message}\n`)
}

function shownAs (error: RegisteredError, details: Record<string, unknown> = {}): ShownError {
  return { error, statusCode: error.statusCode, code: error.code, message: error.message, details }
}

async function sendError (request: FastifyRequest, reply: FastifyReply, shown: ShownError) {
  reply.code(shown.statusCode)
  // Come back soon: this is not maintenance with an expected end.
  if (shown.error instanceof StateUnavailableError) reply.header('retry-after', UNAVAILABLE_RETRY_AFTER_S)
  const error = httpReason(shown.statusCode)
  if (wantsJson(request)) {
    return { statusCode: shown.statusCode, code: shown.code, error, message: shown.message, ...shown.details }
  }
  if (shown.error instanceof ExclusiveError) {
    return reply.render('maintenance', { title: 'Closed for maintenance', state: request.server.maintenance.state, retryAfter: request.server.maintenance.retryAfter(), stateInPage: true })
  }
  return reply.render('error', {
    title: error,
    statusCode: shown.statusCode,
    code: shown.code,
    message: shown.message,
    fields: shown.details.fields as Record<string, string> | undefined,
  })
}

function httpReason (statusCode: number): string {
  return STATUS_CODES[statusCode] ?? 'Error'
}

export default fp(errorPlugin, {
  fastify: '5.x',
  name: 'quiesce-errors',
  dependencies: ['quiesce-view'],
})
