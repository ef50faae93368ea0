import type { FastifyPluginAsync } from 'fastify'
import { recentSignInFailures, SIGN_IN_FAILURES_KEPT_DAYS, type SignInFailure } from '../auth/sign-in-log.js'
import { SIGN_IN_LIMITS } from '../auth/sign-in-limiter.js'

declare module '../web/view.js' {
  interface Pages {
    'manage-sign-ins': { failures: SignInFailure[], lastDay: number, keptDays: number, limits: typeof SIGN_IN_LIMITS }
  }
}

const SHOWN = 100

/** Failed sign-ins (form and HTTP Basic), newest first, so that managers see who is guessing. */
const signInsRoutes: FastifyPluginAsync = async function signInsRoutes (fastify) {
  fastify.get('/manage/sign-ins', async function signInFailures (request, reply) {
    const since = new Date(Date.now() - 24 * 60 * 60 * 1000).toISOString()
    const { failures, count } = await recentSignInFailures(request.unitOfWork.db, { limit: SHOWN, since })
    return reply.render('manage-sign-ins', { title: 'Failed sign-ins', failures, lastDay: count, keptDays: SIGN_IN_FAILURES_KEPT_DAYS, limits: SIGN_IN_LIMITS })
  })
}

export default signInsRoutes
