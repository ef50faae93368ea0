import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { catalogFor, type Catalog } from './catalog.js'
import { DocumentWriter } from './documents.js'

declare module 'fastify' {
  interface FastifyInstance {
    catalog: Catalog
    documents: DocumentWriter
  }
}

/** The catalog for this database kind, and the writer that keeps documents and catalog in step. */
const contentPlugin: FastifyPluginAsync = async function contentPlugin (fastify) {
  const catalog = catalogFor(fastify.db.kind)
  fastify.decorate('catalog', catalog)
  fastify.decorate('documents', new DocumentWriter(catalog))
}

export default fp(contentPlugin, {
  fastify: '5.x',
  name: 'quiesce-content',
  dependencies: ['quiesce-db'],
})
