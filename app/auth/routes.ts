import type { FastifyPluginAsync } from 'fastify'
import { RateLimitedError } from '../errors.js'
import { authenticate } from './authenticate.js'

declare module '../web/view.js' {
  interface Pages {
    login: { username: string, next: string, error: string | null }
  }
}

interface LoginBody { username?: string, password?: string, next?: string }

export const LOGIN_RATE_LIMIT = { max: 10, timeWindow: 60_000 }

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

/** Sign-in and sign-out pages; always open, in every maintenance mode. */
const authRoutes: FastifyPluginAsync = async function authRoutes (fastify) {
  fastify.get<{ Querystring: { next?: string } }>('/login', { config: { maintenance: 'always-open' } }, async function loginPage (request, reply) {
    return reply.render('login', { title: 'Sign in', username: '', next: safeNext(request.query.next), error: null })
  })

  fastify.post<{ Body: LoginBody }>('/login', {
    config: {
      maintenance: 'always-open',
      rateLimit: {
        ...LOGIN_RATE_LIMIT,
        // Per address and account: guessing one account's password is slow, and people who
        // share an address (an office, a test runner) do not lock each other out.
        hook: 'preValidation',
        keyGenerator: (request) => `${request.ip}|${String((request.body as LoginBody | undefined)?.username ?? '').trim().toLowerCase()}`,
        errorResponseBuilder: (_request, context) => new RateLimitedError(`in ${Math.ceil(context.ttl / 1000)} seconds`),
      },
    },
  }, async function login (request, reply) {
    const { username = '', password = '', next } = request.body ?? {}
    let principal
    try {
      principal = await authenticate(fastify.db.reader, fastify.config.accessFile, username.trim(), password)
    } catch (err) {
      request.log.error({ err }, 'sign-in failed: the users table could not be read')
      reply.code(503)
      return reply.render('login', { title: 'Sign in', username, next: safeNext(next), error: 'Sign-in is unavailable right now: the user list cannot be read. The emergency user can still sign in.' })
    }
    if (principal === undefined) {
      reply.code(401)
      return reply.render('login', { title: 'Sign in', username, next: safeNext(next), error: 'Wrong user name or password.' })
    }
    await request.session.regenerate()
    request.session.principal = principal
    request.log.info({ user: principal.name, role: principal.role }, 'signed in')
    return reply.seeOther(safeNext(next))
  })

  fastify.post('/logout', { config: { maintenance: 'always-open' } }, async function logout (request, reply) {
    await request.session.destroy()
    return reply.seeOther('/')
  })
}

export default authRoutes
