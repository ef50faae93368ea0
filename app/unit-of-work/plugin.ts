import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema.js'
import { DirectSendError } from '../errors.js'
import { pruneCommitLogEvery } from './commit-log.js'
import { UnitOfWorkEngine, type Actor, type CommitPosition, type UnitOfWork } from './unit-of-work.js'

/**
 * Who the application's units of work run as is the application's own type, named by
 * declaration merging (like `@fastify/jwt`'s `FastifyJWT`), so that this folder imports nothing
 * from the one that knows people:
 * `declare module './unit-of-work/plugin.js' { interface UnitOfWorkTypes { principal: Principal | null } }`
 */
export interface UnitOfWorkTypes {}
export type RequestPrincipal = UnitOfWorkTypes extends { principal: infer P extends Actor } ? P : Actor

declare module 'fastify' {
  interface FastifyInstance {
    unitOfWork: UnitOfWorkEngine<RequestPrincipal>
  }
  interface FastifyRequest {
    /**
     * The unit of work of the handler's current attempt. Every route handler runs in one (but
     * routes with `config: { unitOfWork: false }`); anywhere else reading it throws.
     */
    readonly unitOfWork: UnitOfWork<RequestPrincipal>
    /** The same, or null before the handler runs and on routes that opt out: for hooks and error handlers. */
    unitOfWorkOrNull: UnitOfWork<RequestPrincipal> | null
  }
  interface FastifyContextConfig {
    /** `false` for routes that never write and must not be wrapped (streams, static files). */
    unitOfWork?: boolean
  }
}

export interface UnitOfWorkPluginOptions {
  attempts: number
  /** Who makes the request; called once per request, when its handler starts. */
  principalOf: (request: FastifyRequest) => RequestPrincipal
  /** What the handler's first attempt reads through, if not the database's reader (a replica). */
  readerOf?: (request: FastifyRequest) => Kysely<DB> | undefined
  /** Read after each commit with writes, as `unitOfWork.commitPosition`. */
  commitPosition?: CommitPosition
}

const kAbort = Symbol('quiesce.unitOfWork.abort')
interface AbortableRequest { [kAbort]?: AbortController }

/**
 * Every route runs its handler in a unit of work: the handler reads through it and stages
 * writes; when it returns, the writes are committed in one short transaction, before the reply
 * is sent. A conflict runs the handler again from the start with a fresh unit of work and a
 * reset reply. A reply with status >= 400 never commits. Handlers return their payload (use
 * `reply.seeOther(url)` for a redirect) so that nothing is sent before the commit.
 */
const unitOfWorkPlugin: FastifyPluginAsync<UnitOfWorkPluginOptions> = async function unitOfWorkPlugin (fastify, options) {
  const engine = new UnitOfWorkEngine<RequestPrincipal>({
    writer: fastify.db.writer,
    reader: fastify.db.reader,
    attempts: options.attempts,
    log: fastify.log,
    commitPosition: options.commitPosition,
  })
  fastify.decorate('unitOfWork', engine)
  fastify.decorateRequest('unitOfWorkOrNull', null)
  fastify.decorateRequest('unitOfWork', {
    getter (this: FastifyRequest) {
      const unitOfWork = this.unitOfWorkOrNull
      if (unitOfWork === null) throw new Error('request.unitOfWork is there only in a route handler that runs in a unit of work (not in a hook, nor on a route with config.unitOfWork false): use request.unitOfWorkOrNull')
      return unitOfWork
    },
  })
  fastify.decorateReply('seeOther', function seeOther (this: FastifyReply, url: string) {
    this.code(303).header('location', url)
    return ''
  })

  fastify.addHook('onRoute', function wrapInUnitOfWork (routeOptions) {
    if (routeOptions.config?.unitOfWork === false) return
    routeOptions.handler = inUnitOfWork(routeOptions.handler, engine, options)
  })

  fastify.addHook('onRequestAbort', async function abortUnitOfWork (request) {
    (request as AbortableRequest)[kAbort]?.abort()
  })

  // A handler that sends by itself would answer before its writes commit: refuse the writes.
  fastify.addHook('onSend', async function refuseDirectSend (request) {
    const unitOfWork = request.unitOfWorkOrNull
    if (unitOfWork?.state === 'open' && unitOfWork.hasWrites) {
      unitOfWork.discard()
      throw new DirectSendError()
    }
  })

  const stopPruning = pruneCommitLogEvery(fastify.db.writer, 60_000, (err) => fastify.log.warn({ err }, 'could not prune the commit log'), () => fastify.db.standby)
  fastify.addHook('preClose', async function stopPruningCommitLog () {
    stopPruning()
  })

  fastify.addHook('onClose', async function closeUnitOfWork () {
    await engine.close()
  })
}

function inUnitOfWork (handler: RouteHandlerMethod, engine: UnitOfWorkEngine<RequestPrincipal>, { principalOf, readerOf }: UnitOfWorkPluginOptions): RouteHandlerMethod {
  return async function handlerInUnitOfWork (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
    const abort = new AbortController()
    ;(request as AbortableRequest)[kAbort] = abort
    const initialStatus = reply.statusCode
    const initialHeaders = { ...reply.getHeaders() }
    return engine.run(principalOf(request), async (unitOfWork) => {
      request.unitOfWorkOrNull = unitOfWork
      const payload = await handler.call(this, request, reply)
      if (reply.statusCode >= 400) unitOfWork.discard()
      return payload
    }, {
      signal: abort.signal,
      reader: readerOf?.(request),
      onRetry () {
        for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
        reply.headers(initialHeaders)
        reply.code(initialStatus)
      },
    })
  }
}

declare module 'fastify' {
  interface FastifyReply {
    /** Sets `303 See Other` to `url` and returns an empty payload to return from the handler. */
    seeOther (url: string): string
  }
}

export default fp(unitOfWorkPlugin, {
  fastify: '5.x',
  name: 'quiesce-unit-of-work',
  dependencies: ['quiesce-db'],
})
