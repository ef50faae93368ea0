import { createHmac } from 'node:crypto'
import { signerFactory } from '@fastify/cookie'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import type { Replica, Replicas, ReplicaStatus } from '../db/replicas.js'
import { formatWalPosition, parseWalPosition, type WalPosition } from '../db/wal-position.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The replica this request's handler reads from at first; null: the primary. */
    replica: Replica | null
  }
  interface FastifyContextConfig {
    /**
     * `false`: the route reads from the primary always, for what it shows may have been written
     * a moment ago by someone else (a password reset link the manager just made).
     */
    replicaReads?: boolean
  }
}

/** The person's read-after position: the newest commit of theirs their reads must show. */
export const READ_AFTER_COOKIE = 'quiesce.read-after'
/** The same position for API clients that keep no cookies: sent with each write's answer, echoed back. */
export const READ_AFTER_HEADER = 'quiesce-read-after'
/** On an answer whose handler read from a replica: the replica's name. */
export const REPLICA_HEADER = 'quiesce-replica'

const READING_METHODS = new Set(['GET', 'HEAD'])

export interface ReplicaReadsOptions {
  replicas: Replicas
  /** The site's session secret; the positions are signed with a key derived from it. */
  secret: string
}

/**
 * Which requests read from a replica, and read-your-writes across requests. A GET or HEAD in a
 * unit of work reads from a replica that has replayed the person's read-after position (from
 * the cookie, or the header an API client echoes); every other request, and every retry, reads
 * from the primary. A request that committed writes answers with the commit's WAL position, as
 * the cookie and as the header. Choosing costs no query: the replicas' state is in memory.
 */
const replicaReadsPlugin: FastifyPluginAsync<ReplicaReadsOptions> = async function replicaReadsPlugin (fastify, options) {
  const { replicas } = options
  const tokens = readAfterTokens(options.secret)
  // Past the max lag every replica that is used at all has replayed the position, so the cookie
  // need not outlive it by much; a minute more spares clocks and slow polls any doubt.
  const cookie = { path: '/', httpOnly: true, sameSite: 'lax', secure: 'auto', maxAge: Math.ceil(replicas.maxLagMs / 1000) + 60 } as const

  fastify.decorateRequest('replica', null)

  function chooseReplica (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const readAfter = readAfterOf(request, tokens)
    if (readAfter !== undefined) request.replica = replicas.choose(readAfter) ?? null
    done()
  }

  fastify.addHook('onRoute', function readFromReplicas (routeOptions) {
    const reads = [routeOptions.method].flat().every((method) => READING_METHODS.has(method))
    if (!reads || routeOptions.config?.unitOfWork === false || routeOptions.config?.replicaReads === false) return
    routeOptions.preHandler = [chooseReplica, ...[routeOptions.preHandler ?? []].flat()]
  })

  fastify.addHook('onSend', function tellReplicaAndPosition (request, reply, payload, done) {
    const unitOfWork = request.unitOfWorkOrNull
    // The final attempt's reads: a retry, or a replica that failed, read from the primary.
    if (request.replica !== null && unitOfWork?.db === request.replica.db) reply.header(REPLICA_HEADER, request.replica.name)
    const position = unitOfWork?.commitPosition
    if (position !== undefined) {
      const token = tokens.sign(formatWalPosition(position))
      reply.setCookie(READ_AFTER_COOKIE, token, cookie)
      reply.header(READ_AFTER_HEADER, token)
    }
    done(null, payload)
  })

  const logStatus = (status: ReplicaStatus) => {
    if (status.usable) fastify.log.info({ replica: status.name, location: status.location, lagMs: status.lagMs }, 'replica used for reads')
    else fastify.log.warn({ replica: status.name, location: status.location, problem: status.problem }, 'replica left out of reads')
  }
  // Each replica checked by the time this instance serves, then each change (a first check included).
  fastify.addHook('onReady', async function logReplicas () {
    for (const status of replicas.status()) if (status.checkedAt !== null) logStatus(status)
    replicas.onChange(logStatus)
  })
}

interface ReadAfterTokens {
  sign (position: string): string
  /** The position in a token; undefined when it is not one of ours. */
  verify (token: string): WalPosition | undefined
}

function readAfterTokens (secret: string): ReadAfterTokens {
  // A key of their own, so a position's signature is never valid as anything else's.
  const signer = signerFactory(createHmac('sha256', secret).update(READ_AFTER_COOKIE).digest())
  return {
    sign: (position) => signer.sign(position),
    verify (token) {
      const { valid, value } = signer.unsign(token)
      return valid && value !== null ? parseWalPosition(value) : undefined
    },
  }
}

/**
 * The newest position of the cookie and the header; 0n with neither. A token that is not ours
 * (tampered, or signed with a secret since replaced) gives undefined: read from the primary.
 */
function readAfterOf (request: FastifyRequest, tokens: ReadAfterTokens): WalPosition | undefined {
  let newest = 0n
  for (const token of [request.cookies[READ_AFTER_COOKIE], request.headers[READ_AFTER_HEADER]]) {
    if (token === undefined) continue
    const position = typeof token === 'string' ? tokens.verify(token) : undefined
    if (position === undefined) return undefined
    if (position > newest) newest = position
  }
  return newest
}

export default fp(replicaReadsPlugin, {
  fastify: '5.x',
  name: 'quiesce-replica-reads',
  dependencies: ['quiesce-db', 'quiesce-unit-of-work', '@fastify/cookie'],
})
