import createError from '@fastify/error'
import { MODE_LABELS, type MaintenanceState } from './state.js'

/**
 * The maintenance plugin's error codes. The plugin is self-contained, so it owns them; the
 * site registers them in its one registry (app/errors.ts).
 */
export const ExclusiveError = createError<'QUIESCE_EXCLUSIVE', 503, [string]>(
  'QUIESCE_EXCLUSIVE', `The site is closed for ${MODE_LABELS.exclusive} maintenance%s`, 503)
export const ReadOnlyError = createError<'QUIESCE_READ_ONLY', 503, [string]>(
  'QUIESCE_READ_ONLY', `The site is in ${MODE_LABELS.concurrent} maintenance%s; nothing was saved`, 503)
export const NotMaintainerError = createError<'QUIESCE_NOT_MAINTAINER', 403, [string]>(
  'QUIESCE_NOT_MAINTAINER', 'Only the maintainer (%s) or the emergency user may change maintenance now', 403)
export const NotManagerError = createError<'QUIESCE_NOT_MANAGER', 403, [string]>(
  'QUIESCE_NOT_MANAGER', 'Only managers and the emergency user may %s', 403)
export const StateConflictError = createError<'QUIESCE_STATE_CONFLICT', 409, [number, number]>(
  'QUIESCE_STATE_CONFLICT', 'The maintenance state changed meanwhile: it is at version %d, not %d; look at it again and retry', 409)
export const InvalidStateChangeError = createError<'QUIESCE_INVALID_STATE_CHANGE', 400, [string]>(
  'QUIESCE_INVALID_STATE_CHANGE', '%s', 400)
/** The database cannot be used right now (the message says what that means for the request). */
export const StateUnavailableError = createError<'QUIESCE_STATE_UNAVAILABLE', 503, [string, { cause: unknown }?]>(
  'QUIESCE_STATE_UNAVAILABLE', '%s', 503)

export const InvalidInputError = createError<'QUIESCE_INVALID_INPUT', 400, [string]>(
  'QUIESCE_INVALID_INPUT', '%s', 400)

export const UnauthorizedError = createError<'QUIESCE_UNAUTHORIZED', 401, []>(
  'QUIESCE_UNAUTHORIZED', 'Sign in to do this', 401)

/** A wrong option given to the plugin: registration fails with it (it never reaches a client). */
export const InvalidOptionError = createError<'QUIESCE_INVALID_OPTION', 500, [string]>(
  'QUIESCE_INVALID_OPTION', 'quiesce-maintenance: %s', 500)

const refusals = new WeakMap<MaintenanceState, Error>()

/**
 * The refusal of a request or commit in `current`'s mode (not normal): exclusive or read-only.
 * Built once for each state (as under-pressure builds its 503 once), not for each request the
 * gate turns away.
 */
export function refusalFor (current: MaintenanceState): Error {
  let refusal = refusals.get(current)
  if (refusal === undefined) {
    const reason = current.reason === null ? '' : `: ${current.reason}`
    refusal = current.mode === 'exclusive' ? new ExclusiveError(reason) : new ReadOnlyError(reason)
    refusals.set(current, refusal)
  }
  return refusal
}

export const MAINTENANCE_ERRORS = {
  QUIESCE_UNAUTHORIZED: UnauthorizedError,
  QUIESCE_INVALID_INPUT: InvalidInputError,
  QUIESCE_EXCLUSIVE: ExclusiveError,
  QUIESCE_READ_ONLY: ReadOnlyError,
  QUIESCE_NOT_MAINTAINER: NotMaintainerError,
  QUIESCE_NOT_MANAGER: NotManagerError,
  QUIESCE_STATE_CONFLICT: StateConflictError,
  QUIESCE_INVALID_STATE_CHANGE: InvalidStateChangeError,
  QUIESCE_STATE_UNAVAILABLE: StateUnavailableError,
  QUIESCE_INVALID_OPTION: InvalidOptionError,
} as const
