import type { FastifyPluginAsync } from 'fastify'
import { isDatabaseUnavailable } from '../db/errors.js'
import { authenticate } from './authenticate.js'
import { principalFor, type Principal } from './principal.js'
import { isSignInRefusal } from './sign-in-limiter.js'

declare module '../web/view.js' {
  interface Pages {
    login: { username: string, next: string, error: string | null }
  }
}

interface LoginBody { username?: unknown, password?: unknown, next?: unknown }

const SIGN_IN_UNAVAILABLE = 'Sign-in is unavailable right now: the site\'s database cannot be reached. Please try again in a minute.'

const THIS_SITE = 'http://this-site.invalid'

/**
 * Only same-site paths: `next` must not send a person who just signed in to another site.
 * It is judged as a browser reads it, which drops tabs and newlines and treats `\` as `/`,
 * so `/\t/evil.example` is `//evil.example`, another site.
 */
export function safeNext (next: unknown): string {
  if (typeof next !== 'string' || !next.startsWith('/')) return '/'
  let url: URL
  try {
    url = new URL(next, THIS_SITE)
  } catch {
    return '/'
  }
  return url.origin === THIS_SITE ? url.pathname + url.search + url.hash : '/'
}

/**
 * Where a person goes once signed in: back where they were (`next`, this site only), or, when
 * the sign-in page was opened without one, to the control panel for a manager and home for others.
 */
function afterSignIn (next: unknown, principal: Principal): string {
  if (next === undefined || next === '') return principal.canManage ? '/manage' : '/'
  return safeNext(next)
}

/** The sign-in form keeps a safe `next`, and none when it was opened without one. */
function nextForForm (next: unknown): string {
  return next === undefined || next === '' ? '' : safeNext(next)
}

/** Sign-in and sign-out pages; always open, in every maintenance mode. */
const authRoutes: FastifyPluginAsync = async function authRoutes (fastify) {
  fastify.get<{ Querystring: { next?: string } }>('/login', { config: { maintenance: 'always-open' } }, async function loginPage (request, reply) {
    // Said before anyone types a password: the instance knows from its heartbeats (no query here).
    const databaseDown = fastify.hasDecorator('maintenance') && !fastify.maintenance.healthy
    return reply.render('login', { title: 'Sign in', username: '', next: nextForForm(request.query.next), error: databaseDown ? SIGN_IN_UNAVAILABLE : null })
  })

  fastify.post<{ Body: LoginBody }>('/login', {
    config: { maintenance: 'always-open' },
  }, async function login (request, reply) {
    const body = request.body ?? {}
    // A form field given twice arrives as an array: only text is a name or a password.
    const [username, password] = [body.username, body.password].map((value) => typeof value === 'string' ? value : '') as [string, string]
    const next = body.next
    // Nobody can sign in without the database (sessions live there), the emergency user neither.
    const unavailable = async (err: unknown) => {
      request.log.warn({ err }, 'sign-in failed: the database is unavailable')
      reply.code(503)
      return reply.render('login', { title: 'Sign in', username, next: nextForForm(next), error: SIGN_IN_UNAVAILABLE })
    }
    let identity
    try {
      // Limited with HTTP Basic, per address and account and per address (SIGN_IN_LIMITS).
      identity = await fastify.signIns.attempt(request.ip, username,
        () => authenticate(fastify.db.reader, fastify.config.accessFile, username.trim(), password))
    } catch (err) {
      if (isSignInRefusal(err)) {
        reply.header('retry-after', err.retryAfter)
        throw err
      }
      if (isDatabaseUnavailable(err)) return unavailable(err)
      request.log.error({ err }, 'sign-in failed: the users table could not be read')
      reply.code(503)
      return reply.render('login', { title: 'Sign in', username, next: nextForForm(next), error: 'Sign-in is unavailable right now: the user list cannot be read. The emergency user can still sign in.' })
    }
    if (identity === undefined) {
      await fastify.recordSignInFailure(request, username, 'form')
      reply.code(401)
      return reply.render('login', { title: 'Sign in', username, next: nextForForm(next), error: 'Wrong user name or password.' })
    }
    try {
      await request.session.regenerate()
    } catch (err) {
      if (isDatabaseUnavailable(err)) return unavailable(err)
      throw err
    }
    request.session.principal = identity
    request.log.info({ user: identity.name, role: identity.role }, 'signed in')
    return reply.seeOther(afterSignIn(next, principalFor(identity)))
  })

  fastify.post('/logout', { config: { maintenance: 'always-open' } }, async function logout (request, reply) {
    await request.session.destroy()
    return reply.seeOther('/')
  })
}

export default authRoutes
