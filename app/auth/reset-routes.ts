import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ExclusiveError } from '../errors.js'
import { describeError, wantsJson } from '../web/errors.js'
import { textFields } from '../web/forms.js'
import { completePasswordReset, findPasswordReset, type ResetProblem } from './password-resets.js'
import { hashPassword, passwordProblem } from './passwords.js'

declare module '../web/view.js' {
  interface Pages {
    'reset-password': {
      token: string
      username: string | null
      problem: string | null
      error: string | null
      done: boolean
    }
  }
}

const PROBLEMS: Record<ResetProblem, string> = {
  unknown: 'This link is not (or no longer) a password reset link: it may be mistyped, or a newer link was made since. Ask a manager for a new one.',
  used: 'This link was used already: a link sets a password once. If that was not you, tell a manager at once.',
  expired: 'This link has expired. Ask a manager for a new one.',
  disabled: 'This account is disabled, so its password cannot be set. Ask a manager.',
}

interface ResetBody { token?: string, password?: string, again?: string }

/**
 * Where a person opens the link a manager gave them and sets a new password. Setting it is a
 * write of the unit of work, so it waits, like every write, while the site is in maintenance.
 */
const resetRoutes: FastifyPluginAsync = async function resetRoutes (fastify) {
  // A link the manager made a moment ago must open at once: read it from the primary.
  fastify.get<{ Params: { token: string } }>('/reset/:token', { config: { replicaReads: false } }, async function resetPage (request, reply) {
    const reset = await findPasswordReset(request.unitOfWork.db, request.params.token)
    // The token is in this page's address: never cached, never sent on as a referrer (helmet).
    reply.header('cache-control', 'no-store')
    if (typeof reset === 'string') {
      reply.code(reset === 'unknown' ? 404 : 410)
      return reply.render('reset-password', { title: 'Set a new password', token: '', username: null, problem: PROBLEMS[reset], error: null, done: false })
    }
    return reply.render('reset-password', { title: 'Set a new password', token: request.params.token, username: reset.user.username, problem: null, error: null, done: false })
  })

  fastify.post<{ Body: ResetBody }>('/reset', { schema: { body: textFields('token', 'password', 'again') }, errorHandler: refusedReset }, async function setNewPassword (request, reply) {
    const { token = '', password = '', again = '' } = request.body ?? {}
    reply.header('cache-control', 'no-store')
    const reset = await findPasswordReset(request.unitOfWork.db, token)
    if (typeof reset === 'string') {
      reply.code(reset === 'unknown' ? 404 : 410)
      return reply.render('reset-password', { title: 'Set a new password', token: '', username: null, problem: PROBLEMS[reset], error: null, done: false })
    }
    const bad = passwordProblem(password) ?? (password !== again ? 'and its repetition differ' : undefined)
    if (bad !== undefined) {
      reply.code(400)
      return reply.render('reset-password', { title: 'Set a new password', token, username: reset.user.username, problem: null, error: `The password ${bad}.`, done: false })
    }
    const passwordHash = await hashPassword(password)
    request.unitOfWork.stage((transaction) => completePasswordReset(transaction, reset, passwordHash))
    return reply.render('reset-password', { title: 'Password set', token: '', username: reset.user.username, problem: null, error: null, done: true })
  })

  /** A refused save (maintenance) keeps the form, and the link, for later. */
  async function refusedReset (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const shown = describeError(error)
    if (shown.statusCode !== 503 || shown.error instanceof ExclusiveError || wantsJson(request)) throw error
    const body = (request.body ?? {}) as ResetBody
    const reset = await findPasswordReset(fastify.db.reader, body.token ?? '')
    if (typeof reset === 'string') throw error
    reply.code(503)
    return reply.render('reset-password', {
      title: 'Set a new password',
      token: body.token ?? '',
      username: reset.user.username,
      problem: null,
      error: `Not saved: ${shown.message}. Your link still works until ${reset.expiresAt.slice(0, 16).replace('T', ' ')} UTC; try again when the site is back to normal.`,
      done: false,
    })
  }
}

export default resetRoutes
