import { createHash } from 'node:crypto'
import fastifyCookie from '@fastify/cookie'
import fastifyCsrfProtection from '@fastify/csrf-protection'
import fastifySession from '@fastify/session'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable } from '../db/errors.js'
import { databaseUnavailable, ForbiddenError, readOnlyCopyRefusal, UnauthorizedError } from '../errors.js'
import { authenticate, credentialsStamp } from './authenticate.js'
import { principalFor, type Identity, type Principal } from './principal.js'
import { DatabaseSessionStore } from './session-store.js'
import { pruneSignInFailures, recordSignInFailure } from './sign-in-log.js'
import { isSignInRefusal, SignInLimiter, type SignInChannel } from './sign-in-limiter.js'

declare module 'fastify' {
  interface Session {
    /** Who signed in; their principal is computed from it once per request. */
    principal?: Identity
  }
  interface FastifyRequest {
    /** Who is asking: from the session cookie or HTTP Basic credentials, computed once; null for visitors. */
    principal: Principal | null
    authenticatedBy: 'session' | 'basic' | null
  }
  interface FastifyInstance {
    /** The one limiter of every way of presenting a password (the form, HTTP Basic). */
    signIns: SignInLimiter
    /** Records a failed sign-in for managers to see; never throws. */
    recordSignInFailure: (request: FastifyRequest, account: string, channel: SignInChannel) => Promise<void>
    /** preHandler: 401 unless signed in. */
    requireSignedIn: (request: FastifyRequest) => Promise<void>
    /** preHandler: 401/403 unless a manager or the emergency user. */
    requireManager: (request: FastifyRequest) => Promise<void>
  }
}

export interface AuthPluginOptions {
  sessionSecret: string
  accessFile: string
  /**
   * Routes that are served while the database is unavailable (static files, health, the
   * maintenance state and page, the login page): a reader whose session or Basic credentials
   * cannot be checked then gets them as a visitor instead of a 503.
   */
  servedWithoutDatabase?: (request: FastifyRequest) => boolean
  /** Whether the database can be used now (no query: the instance's own view, from its heartbeats). */
  databaseAvailable?: () => boolean
}

const SESSION_COOKIE = 'quiesce.sid'
const SESSION_LIFETIME_MS = 8 * 60 * 60 * 1000
const BASIC_CACHE_MS = 60_000
const BASIC_CACHE_SIZE = 1000
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

// Refusals that say the same to everyone are built once, not for each request.
const SIGN_IN_FIRST = new UnauthorizedError()
const MANAGERS_ONLY = new ForbiddenError()
const DATABASE_UNAVAILABLE = databaseUnavailable(undefined)

/**
 * Sessions (stored in the database), CSRF protection for every unsafe request that carries a
 * session, and the request's principal from the session or from HTTP Basic credentials.
 */
const authPlugin: FastifyPluginAsync<AuthPluginOptions> = async function authPlugin (fastify, options) {
  const store = new DatabaseSessionStore(fastify.db.writer, () => fastify.db.standby)
  await fastify.register(fastifyCookie)
  await fastify.register(fastifySession, {
    secret: options.sessionSecret,
    cookieName: SESSION_COOKIE,
    store,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto', maxAge: SESSION_LIFETIME_MS, path: '/' },
  })
  await fastify.register(fastifyCsrfProtection, { sessionPlugin: '@fastify/session' })

  fastify.decorateRequest('principal', null)
  fastify.decorateRequest('authenticatedBy', null)

  const signIns = new SignInLimiter()
  fastify.decorate('signIns', signIns)
  /** Never throws: a failure that cannot be recorded is still refused, and logged. */
  async function recordFailure (request: FastifyRequest, account: string, channel: SignInChannel): Promise<void> {
    request.log.info({ account, channel }, 'sign-in failed')
    await recordSignInFailure(fastify.db.writer, { account, address: request.ip, channel, instance: fastify.config.instanceId })
      .catch((err: unknown) => request.log.warn({ err }, 'could not record a failed sign-in'))
  }
  fastify.decorate('recordSignInFailure', recordFailure)

  // Verifying argon2 costs ~10 ms; API clients send Basic credentials on every request. A hit
  // is used only while the user's row is at the version it had before the verification (null:
  // the emergency user, not in the database), so a changed password, a new role or disabling
  // count at once, on every instance; if the row cannot be read, the hit stands.
  const verifiedBasic = new Map<string, { principal: Principal, stamp: number | null, expires: number }>()
  const stampOf = (name: string) => credentialsStamp(fastify.db.reader, name).catch(() => undefined)
  // A client that sends the same new credentials on many requests at once (after a restart, or a
  // script starting in parallel) gets one verification, shared: without this each request would
  // take its own reservation and argon2 work, and the burst would answer 429.
  const verifyingBasic = new Map<string, Promise<Principal>>()

  const servedWithoutDatabase = options.servedWithoutDatabase ?? (() => false)
  const databaseAvailable = options.databaseAvailable ?? (() => true)
  /** Who asks cannot be known now: a visitor where that is enough, else a 503 (unsafe requests with a session get it after their body is read). */
  function unknownPrincipal (request: FastifyRequest, cause: unknown): void {
    if (!UNSAFE_METHODS.has(request.method) && !servedWithoutDatabase(request)) throw databaseUnavailable(cause)
  }

  fastify.addHook('onRequest', async function resolvePrincipal (request, reply) {
    // A read-only copy (a standby database) serves everyone as a visitor: signing in, and every
    // change a signed-in person could make, need writes it cannot take.
    if (fastify.db.standby) return
    if (request.session.unreadable === true) {
      unknownPrincipal(request, undefined)
      return
    }
    const fromSession = request.session.principal
    if (fromSession !== undefined) {
      request.principal = principalFor(fromSession)
      request.authenticatedBy = 'session'
      return
    }
    const header = request.headers.authorization
    if (header === undefined || !header.startsWith('Basic ')) return
    try {
      request.principal = await principalOfBasic(request, header)
      request.authenticatedBy = 'basic'
    } catch (err) {
      if (isSignInRefusal(err)) reply.header('retry-after', err.retryAfter)
      if (!isDatabaseUnavailable(err)) throw err
      if (UNSAFE_METHODS.has(request.method)) throw databaseUnavailable(err)
      unknownPrincipal(request, err)
    }
  })

  async function principalOfBasic (request: FastifyRequest, header: string): Promise<Principal> {
    const key = createHash('sha256').update(header).digest('base64')
    const cached = verifiedBasic.get(key)
    if (cached !== undefined && cached.expires > Date.now() &&
      (cached.stamp === null || ((await stampOf(cached.principal.name)) ?? cached.stamp) === cached.stamp)) {
      // Verified before, but while this account is locked from this address, it is locked.
      await signIns.check(request.ip, cached.principal.name)
      return cached.principal
    }
    const pending = verifyingBasic.get(key)
    if (pending !== undefined) {
      const principal = await pending
      await signIns.check(request.ip, principal.name)
      return principal
    }
    const verification = verifyBasic(request, header, key)
    verifyingBasic.set(key, verification)
    try {
      return await verification
    } finally {
      verifyingBasic.delete(key)
    }
  }

  async function verifyBasic (request: FastifyRequest, header: string, key: string): Promise<Principal> {
    const credentials = parseBasic(header)
    if (credentials === undefined) throw SIGN_IN_FIRST
    const stamp = await stampOf(credentials.username)
    const identity = await signIns.attempt(request.ip, credentials.username,
      () => authenticate(fastify.db.reader, options.accessFile, credentials.username, credentials.password))
    if (identity === undefined) {
      await recordFailure(request, credentials.username, 'basic')
      throw SIGN_IN_FIRST
    }
    const principal = principalFor(identity)
    if (verifiedBasic.size >= BASIC_CACHE_SIZE) verifiedBasic.delete(verifiedBasic.keys().next().value as string)
    // The emergency user has no row to stamp; a user whose row could not be read is not remembered.
    const cachedStamp = principal.isEmergency ? null : stamp
    if (cachedStamp !== undefined) verifiedBasic.set(key, { principal, stamp: cachedStamp, expires: Date.now() + BASIC_CACHE_MS })
    return principal
  }

  // An API request without a signed-in session needs no token when no browser could have been
  // made to send it by another site: its body is JSON (a cross-site page cannot send that without
  // a CORS preflight nobody grants) or absent, and the browser's own headers (Sec-Fetch-Site,
  // Origin) do not say it came from another site. One without credentials gets the route's own
  // answer (401), not a CSRF error. Everywhere else a token is needed, Basic credentials or not: a
  // browser that has cached Basic credentials sends them with a forged form post, or a forged
  // body-less `fetch(..., { method: 'POST', mode: 'no-cors' })`, by itself.
  // Forms stay checked even when anonymous: the login form must not accept forged sign-ins.
  fastify.addHook('preValidation', function checkCsrf (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    // Whose session this is cannot be known now; refused here, after the body was read, so that a
    // form comes back with what the person typed.
    if (UNSAFE_METHODS.has(request.method) && request.session.unreadable === true) {
      done(DATABASE_UNAVAILABLE)
      return
    }
    if (!UNSAFE_METHODS.has(request.method) ||
      (request.authenticatedBy !== 'session' && request.url.startsWith('/api/') && !mayBeForged(request))) {
      done()
      return
    }
    // A form whose session never got its secret saved, because the database is unavailable, is
    // told so rather than that it expired (reloading would not help).
    if ((request.session as { _csrf?: string })._csrf === undefined && !databaseAvailable()) {
      done(DATABASE_UNAVAILABLE)
      return
    }
    fastify.csrfProtection(request, reply, done)
  })

  // On a read-only copy nobody can sign in: saying "sign in first" would send people in circles.
  const readOnlyCopy = readOnlyCopyRefusal(fastify.config.primaryOrigin)
  fastify.decorate('requireSignedIn', async function requireSignedIn (request: FastifyRequest) {
    if (fastify.db.standby) throw readOnlyCopy
    signedIn(request)
  })
  fastify.decorate('requireManager', async function requireManager (request: FastifyRequest) {
    if (fastify.db.standby) throw readOnlyCopy
    if (!signedIn(request).canManage) throw MANAGERS_ONLY
  })

  const pruneTimer = setInterval(() => {
    if (fastify.db.standby) return
    store.prune().catch((err: unknown) => fastify.log.warn({ err }, 'could not prune expired sessions'))
    pruneSignInFailures(fastify.db.writer).catch((err: unknown) => fastify.log.warn({ err }, 'could not prune old failed sign-ins'))
  }, 60 * 60 * 1000)
  pruneTimer.unref()
  fastify.addHook('onClose', async function stopSessionPruning () {
    clearInterval(pruneTimer)
  })
}

/** Bodies a page of another site can make a browser send without asking (CORS-safelisted). */
const FORGEABLE_BODIES = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain']
/** Sec-Fetch-Site values of a request this site's own pages, or the person, made. */
const OWN_SITE = new Set(['same-origin', 'none'])

/**
 * Whether a browser may have sent this request for another site's page: a body another site can
 * send, or the browser's headers naming another site as its maker. Scripts and the CLI send
 * neither header; every browser in use sends Sec-Fetch-Site, and Origin on cross-origin posts.
 */
function mayBeForged (request: FastifyRequest): boolean {
  const contentType = request.headers['content-type']?.toLowerCase()
  if (contentType !== undefined && FORGEABLE_BODIES.some((type) => contentType.startsWith(type))) return true
  const site = request.headers['sec-fetch-site']
  if (site !== undefined && !OWN_SITE.has(site)) return true
  const origin = request.headers.origin
  return origin !== undefined && hostOf(origin) !== request.host
}

/** The host (and port) of an Origin header; a TLS-ending proxy may change the scheme, not the host. */
function hostOf (origin: string): string | undefined {
  try {
    return new URL(origin).host
  } catch {
    return undefined // "null" (a sandboxed or privacy-sensitive context) or not a URL
  }
}

/**
 * The principal of a request that must be signed in: what a handler behind `requireSignedIn` or
 * `requireManager` reads (a `401` if it is not there, as those hooks answer).
 */
export function signedIn (request: FastifyRequest): Principal {
  const principal = request.principal
  if (principal === null) throw SIGN_IN_FIRST
  return principal
}

function parseBasic (header: string): { username: string, password: string } | undefined {
  const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon <= 0) return undefined
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

export default fp(authPlugin, {
  fastify: '5.x',
  name: 'quiesce-auth',
  dependencies: ['quiesce-db'],
})
