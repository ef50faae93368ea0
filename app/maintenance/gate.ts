import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { refusalFor } from './errors.js'
import { bypasses, type MaintenancePrincipal } from './state.js'
import type { StateCache } from './state-cache.js'
import type { RequestTracker } from './tracking.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `'always-open'`: served in every mode, to everyone (sign-in, health, the state itself). */
    maintenance?: 'always-open'
  }
}

interface GateOptions {
  cache: StateCache
  tracker: RequestTracker
  principalOf: (request: FastifyRequest) => MaintenancePrincipal | null
  alwaysOpenPrefixes: readonly string[]
  retryAfter: () => number
}

/**
 * The gate: an `onRequest` hook with no database query, nothing but a comparison unless the
 * site is exclusive; and the mode on every response, `Retry-After` on every 503.
 */
export function registerGate (fastify: FastifyInstance, { cache, tracker, principalOf, alwaysOpenPrefixes, retryAfter }: GateOptions): void {
  function isAlwaysOpen (request: FastifyRequest): boolean {
    if (request.routeOptions.config.maintenance === 'always-open') return true
    for (const prefix of alwaysOpenPrefixes) if (request.url.startsWith(prefix)) return true
    return false
  }

  fastify.addHook('onRequest', function maintenanceGate (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const state = cache.state
    // Set here too for responses that bypass onSend (event streams).
    reply.header('quiesce-mode', state.mode)
    tracker.track(request)
    if (state.mode !== 'exclusive' || isAlwaysOpen(request) || bypasses(state, principalOf(request))) {
      done()
      return
    }
    reply.code(503).header('retry-after', retryAfter())
    done(refusalFor(state))
  })

  // Every response says the mode, as it is when the response leaves (also after a hook that
  // ran before the gate refused the request); every 503 says when to come back. A callback
  // hook, as the gate: no promise per response.
  fastify.addHook('onSend', function describeMode (_request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) {
    reply.header('quiesce-mode', cache.state.mode)
    if (reply.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', retryAfter())
    done(null, payload)
  })
}
