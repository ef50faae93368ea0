import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { signedIn } from '../auth/plugin.js'
import { MAX_INTEGER } from '../db/schema.js'
import { ConflictError, invalidInput } from '../errors.js'
import { countDocuments, findDocument, listDocuments, requireDocument, type Document } from './documents.js'
import { slugProblem, validateDocumentInput } from './validation.js'

const SlugParams = Type.Object({ slug: Type.String() })
const Paging = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  offset: Type.Integer({ minimum: 0, maximum: MAX_INTEGER, default: 0 }),
})
const Version = Type.Integer({ minimum: 1, maximum: MAX_INTEGER })

function documentJson (doc: Document) {
  return { slug: doc.slug, title: doc.title, body: doc.body, version: doc.version, updatedAt: doc.updatedAt, updatedBy: doc.updatedBy }
}

/** The documents and search JSON API (PRODUCT §4.4). */
const contentApi: FastifyPluginAsyncTypebox = async function contentApi (fastify) {
  fastify.get('/api/docs', { schema: { querystring: Paging } }, async function list (request) {
    const db = request.unitOfWork.db
    const { limit, offset } = request.query
    const [docs, total] = await Promise.all([listDocuments(db, { limit, offset }), countDocuments(db)])
    return { total, limit, offset, docs }
  })

  fastify.get('/api/docs/:slug', { schema: { params: SlugParams } }, async function show (request) {
    const doc = await requireDocument(request.unitOfWork.db, request.params.slug)
    return documentJson(doc)
  })

  fastify.put('/api/docs/:slug', {
    preHandler: fastify.requireSignedIn,
    schema: {
      params: SlugParams,
      body: Type.Object({
        title: Type.Optional(Type.Unknown()),
        body: Type.Optional(Type.Unknown()),
        expectedVersion: Type.Optional(Version),
      }),
    },
  }, async function put (request, reply) {
    const { slug } = request.params
    const problem = slugProblem(slug)
    const checked = validateDocumentInput(request.body)
    if (problem !== undefined || checked.errors !== undefined) {
      throw invalidInput({ ...(problem === undefined ? {} : { slug: problem }), ...checked.errors })
    }
    const { expectedVersion } = request.body
    const unitOfWork = request.unitOfWork
    const existing = await findDocument(unitOfWork.db, slug)
    if (existing === undefined) {
      if (expectedVersion !== undefined) throw new ConflictError(`Document "${slug}" does not exist (any more); expected version ${expectedVersion}`)
      reply.code(201)
      return documentJson(fastify.documents.create(unitOfWork, slug, checked.value, signedIn(request).name))
    }
    if (expectedVersion !== undefined && expectedVersion !== existing.version) {
      throw new ConflictError(`Document "${slug}" is at version ${existing.version}, not ${expectedVersion}`)
    }
    return documentJson(fastify.documents.update(unitOfWork, existing, checked.value, signedIn(request).name))
  })

  fastify.delete('/api/docs/:slug', {
    preHandler: fastify.requireSignedIn,
    schema: { params: SlugParams, querystring: Type.Object({ expectedVersion: Type.Optional(Version) }) },
  }, async function remove (request, reply) {
    const doc = await requireDocument(request.unitOfWork.db, request.params.slug)
    const { expectedVersion } = request.query
    if (expectedVersion !== undefined && expectedVersion !== doc.version) {
      throw new ConflictError(`Document "${doc.slug}" is at version ${doc.version}, not ${expectedVersion}`)
    }
    fastify.documents.delete(request.unitOfWork, doc)
    reply.code(204)
    return ''
  })

  fastify.get('/api/search', {
    schema: {
      querystring: Type.Object({
        q: Type.String({ maxLength: 500 }),
        limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
        offset: Type.Integer({ minimum: 0, maximum: MAX_INTEGER, default: 0 }),
      }),
    },
  }, async function search (request) {
    const db = request.unitOfWork.db
    const { q, limit, offset } = request.query
    const [total, hits] = await Promise.all([fastify.catalog.count(db, q), fastify.catalog.search(db, q, limit, offset)])
    return { total, limit, offset, hits }
  })
}

export default contentApi
