import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import helmet from 'helmet'

/** helmet's configuration, as its own options type describes it. */
export type SecurityHeadersOptions = Parameters<typeof helmet>[0]

/**
 * Strict security headers from helmet. Without per-request nonces they are the same for every
 * response, so helmet runs once, at start, and each request gets the resulting headers.
 * (@fastify/helmet runs helmet on every request: a fifth of a page's server time here.)
 */
export function computeSecurityHeaders (options: SecurityHeadersOptions): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {}
  const response = {
    setHeader (name: string, value: string | number | string[]) { headers[name.toLowerCase()] = value },
    removeHeader (name: string) { delete headers[name.toLowerCase()] },
    getHeader (name: string) { return headers[name.toLowerCase()] },
  }
  let failure: unknown
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (err?: unknown) => { failure = err })
  if (failure !== undefined) throw failure
  return headers
}

const securityHeadersPlugin: FastifyPluginAsync<{ helmet: SecurityHeadersOptions }> = async function securityHeadersPlugin (fastify, options) {
  const headers = computeSecurityHeaders(options.helmet)
  fastify.addHook('onRequest', function setSecurityHeaders (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    reply.headers(headers)
    done()
  })
}

export default fp(securityHeadersPlugin, { fastify: '5.x', name: 'quiesce-security-headers' })
