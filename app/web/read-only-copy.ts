import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { readOnlyCopyRefusal } from '../errors.js'

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

export interface ReadOnlyCopyOptions {
  /** Where the primary site is (`QUIESCE_PRIMARY_ORIGIN`), named in every refusal; null: not said. */
  primaryOrigin: string | null
}

/**
 * An instance on a hot standby serves the site read-only by itself, as NEO's backup cluster
 * serves its clients: pages and search work, and every unsafe request is refused at once with
 * `503 QUIESCE_REPLICA` (before sessions or credentials are looked at: nothing here could be
 * saved). Every answer says `Quiesce-Replica: standby`. A database is a standby from the start
 * or never (a primary does not become one without a restart), so an instance on a primary adds
 * no hook at all; on a standby the hook asks each time, and lets everything through once the
 * standby is found promoted, without a restart.
 */
const readOnlyCopyPlugin: FastifyPluginAsync<ReadOnlyCopyOptions> = async function readOnlyCopyPlugin (fastify, options) {
  if (!fastify.db.standby) return
  const refusal = readOnlyCopyRefusal(options.primaryOrigin)
  fastify.addHook('onRequest', function refuseChangesOnCopy (request, reply, done) {
    if (!fastify.db.standby) {
      done()
      return
    }
    // Every answer of a read-only copy is served from a replica (replica reads name theirs).
    reply.header('quiesce-replica', 'standby')
    done(UNSAFE_METHODS.has(request.method) ? refusal : undefined)
  })
}

export default fp(readOnlyCopyPlugin, { fastify: '5.x', name: 'quiesce-read-only-copy', dependencies: ['quiesce-db'] })
