import createError from '@fastify/error'
import { isLostConnection } from './db/errors.js'
import {
  ExclusiveError, InvalidInputError, MAINTENANCE_ERRORS, NotMaintainerError, ReadOnlyError, StateConflictError, StateUnavailableError, UnauthorizedError,
} from './maintenance/errors.js'

export { ExclusiveError, InvalidInputError, NotMaintainerError, ReadOnlyError, StateConflictError, StateUnavailableError, UnauthorizedError }

/**
 * The one registry of Quiesce error codes. Every code is listed, with its status, in the
 * README; test/errors.test.ts keeps the two in step. The maintenance plugin is self-contained,
 * so it owns its codes (app/maintenance/errors.ts); they are registered here with the site's.
 */
export const ConflictError = createError<'QUIESCE_CONFLICT', 409, [string, { cause: unknown }?]>(
  'QUIESCE_CONFLICT', '%s', 409)
export const NotFoundError = createError<'QUIESCE_NOT_FOUND', 404, [string]>(
  'QUIESCE_NOT_FOUND', '%s', 404)
export const ForbiddenError = createError<'QUIESCE_FORBIDDEN', 403, []>(
  'QUIESCE_FORBIDDEN', 'Only managers may do this', 403)
export const CsrfError = createError<'QUIESCE_CSRF_INVALID', 403, []>(
  'QUIESCE_CSRF_INVALID', 'The form expired or did not come from this site; reload the page and try again', 403)
export const TooLargeError = createError<'QUIESCE_TOO_LARGE', 413, []>(
  'QUIESCE_TOO_LARGE', 'The request is too large; nothing was saved', 413)
export const UnsupportedMediaTypeError = createError<'QUIESCE_UNSUPPORTED_MEDIA_TYPE', 415, []>(
  'QUIESCE_UNSUPPORTED_MEDIA_TYPE', 'Send JSON (application/json) or a form (application/x-www-form-urlencoded)', 415)
export const RateLimitedError = createError<'QUIESCE_RATE_LIMITED', 429, [string]>(
  'QUIESCE_RATE_LIMITED', 'Too many attempts; try again %s', 429)
export const DirectSendError = createError<'QUIESCE_DIRECT_SEND', 500, []>(
  'QUIESCE_DIRECT_SEND', 'A handler in a unit of work sent its reply before the commit; return the payload instead', 500)
export const ReplicaError = createError<'QUIESCE_REPLICA', 503, [string]>(
  'QUIESCE_REPLICA', 'This is a read-only copy of the site: its database is a standby that takes no changes, so nothing can be saved here and signing in is not possible. Make your change %s', 503)
export const InternalError = createError<'QUIESCE_INTERNAL', 500, []>(
  'QUIESCE_INTERNAL', 'Something went wrong on our side; nothing was saved', 500)

export const ERRORS = {
  QUIESCE_CONFLICT: ConflictError,
  QUIESCE_NOT_FOUND: NotFoundError,
  QUIESCE_FORBIDDEN: ForbiddenError,
  QUIESCE_CSRF_INVALID: CsrfError,
  QUIESCE_RATE_LIMITED: RateLimitedError,
  QUIESCE_TOO_LARGE: TooLargeError,
  QUIESCE_UNSUPPORTED_MEDIA_TYPE: UnsupportedMediaTypeError,
  QUIESCE_DIRECT_SEND: DirectSendError,
  QUIESCE_REPLICA: ReplicaError,
  QUIESCE_INTERNAL: InternalError,
  ...MAINTENANCE_ERRORS,
} as const

/** Seconds in the `Retry-After` of a 503 QUIESCE_STATE_UNAVAILABLE: the instance checks its database every 2 s. */
export const UNAVAILABLE_RETRY_AFTER_S = 5

/**
 * What a person is told when the database cannot be used right now (PostgreSQL down, hung or cut
 * off; a SQLite disk full or failing), as `503 QUIESCE_STATE_UNAVAILABLE`. A commit whose
 * connection was lost while the COMMIT was on its way may have been applied: it says so, rather
 * than "nothing was saved".
 */
export function databaseUnavailable (cause: unknown, options: { committing?: boolean } = {}): InstanceType<typeof StateUnavailableError> {
  const message = options.committing === true && isLostConnection(cause)
    ? 'The connection to the database was lost while your change was being saved, so it may or may not have been saved; reload to see before you try again'
    : 'The site\'s database is unavailable right now, so this could not be done and nothing was saved; try again in a few seconds'
  return new StateUnavailableError(message, { cause })
}

/**
 * What a person is told on a read-only copy (an instance on a standby database) when they try to
 * change something, sign in, or open a page that needs them signed in: `503 QUIESCE_REPLICA`.
 */
export function readOnlyCopyRefusal (primaryOrigin: string | null): InstanceType<typeof ReplicaError> {
  return new ReplicaError(primaryOrigin === null ? 'on the primary site' : `at ${primaryOrigin}`)
}

export type FieldErrors = Record<string, string>

/** A 400 that names each bad field, so a form can show the message next to it. */
export function invalidInput (fields: FieldErrors): Error & { fields: FieldErrors } {
  const summary = Object.entries(fields).map(([field, message]) => `${field} ${message}`).join('; ')
  return Object.assign(new InvalidInputError(summary), { fields })
}
