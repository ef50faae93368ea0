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
 * saved). Every answer says `Quiesce-Replica: standby`. It asks the database each time, so the
 * instance serves normally as soon as its standby is found promoted, without a restart.
 */
const readOnlyCopyPlugin: FastifyPluginAsync<ReadOnlyCopyOptions> = async function readOnlyCopyPlugin (fastify, options) {
  const refusal = readOnlyCopyRefusal(options.primaryOrigin)
  fastify.addHook('onRequest', async function refuseChangesOnCopy (request, reply) {
    if (!fastify.db.standby) return
    // Every answer of a read-only copy is served from a replica (replica reads name theirs).
    reply.header('quiesce-replica', 'standby')
    if (UNSAFE_METHODS.has(request.method)) throw refusal
  })
}

export default fp(readOnlyCopyPlugin, { fastify: '5.x', name: 'quiesce-read-only-copy', dependencies: ['quiesce-db'] })
