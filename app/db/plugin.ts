import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Database } from './database.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

export interface DatabasePluginOptions {
  database: Database
  /** Whether closing the app also closes the database (false when the caller owns it). */
  closeOnShutdown?: boolean
}

/** Makes the opened database available as `fastify.db` and closes it with the app. */
const databasePlugin: FastifyPluginAsync<DatabasePluginOptions> = async function databasePlugin (fastify, options) {
  fastify.decorate('db', options.database)
  if (options.closeOnShutdown !== false) {
    fastify.addHook('onClose', async function closeDatabase () {
      await options.database.destroy()
    })
  }
}

export default fp(databasePlugin, { fastify: '5.x', name: 'quiesce-db' })
