import fastifyView from '@fastify/view'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Eta } from 'eta'
import type { Principal } from '../auth/principal.js'
import { VIEWS_DIR } from '../paths.js'

/**
 * The data each page template receives. Feature folders add their pages by declaration
 * merging (`declare module '../web/view.js' { interface Pages { … } }`), so `reply.render`
 * checks every page's data at compile time.
 */

export interface Pages {}

/** What every page's layout reads, filled per request in `reply.locals`. */
export interface Locals {
  principal: Principal | null
  path: string
  /** Creating a CSRF token creates a session, so it happens only when a page has a form. */
  csrfToken: () => string
  [key: string]: unknown
}

declare module 'fastify' {
  interface FastifyReply {
    locals: Locals
    render<P extends keyof Pages> (page: P, data: Pages[P] & { title: string }): Promise<string>
  }
}

const viewPlugin: FastifyPluginAsync = async function viewPlugin (fastify) {
  await fastify.register(fastifyView, {
    engine: { eta: new Eta({ autoEscape: true, autoTrim: [false, 'nl'] }) },
    root: VIEWS_DIR,
    production: true,
    defaultContext: { siteName: 'Quiesce', formatTime },
  })

  fastify.decorateReply('render', async function render (this: FastifyReply, page: string, data: object) {
    this.type('text/html; charset=utf-8')
    return this.viewAsync(page, data)
  })

  fastify.addHook('preHandler', async function fillLocals (request: FastifyRequest, reply: FastifyReply) {
    fillPageLocals(request, reply)
  })
}

/** "2026-11-22 14:05 UTC": one unambiguous time for every reader of the site. */
export function formatTime (iso: string | null | undefined): string {
  if (!iso) return ''
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`
}

/** Also used by the error handler, whose pages may render before any preHandler ran. */
export function fillPageLocals (request: FastifyRequest, reply: FastifyReply): void {
  reply.locals ??= {} as Locals
  reply.locals.principal = request.principal
  reply.locals.path = request.url
  reply.locals.csrfToken = () => reply.generateCsrf()
}

export default fp(viewPlugin, {
  fastify: '5.x',
  name: 'quiesce-view',
  dependencies: ['quiesce-auth'],
})
