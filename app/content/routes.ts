import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ConflictError, invalidInput, type FieldErrors } from '../errors.js'
import type { SearchHit } from './catalog.js'
import { countDocuments, findDocument, listDocuments, requireDocument, type Document, type DocumentSummary } from './documents.js'
import { renderCached } from './markdown.js'
import { slugify, slugProblem, validateDocumentInput } from './validation.js'
import { describeError, wantsJson } from '../web/errors.js'
import { textFields } from '../web/forms.js'

declare module '../web/view.js' {
  interface Pages {
    home: { recent: DocumentSummary[], total: number }
    docs: { docs: DocumentSummary[], page: number, pages: number, total: number }
    doc: { doc: Document, html: string, saved: boolean }
    'doc-form': DocumentForm
    search: { query: string, hits: SearchHit[] }
  }
}

export interface DocumentForm {
  /** `create` posts to /docs, `edit` to /docs/:slug. */
  action: 'create' | 'edit'
  slug: string
  docTitle: string
  body: string
  version: number | null
  errors: FieldErrors
  /** Shown above the form when a save was refused: what happened and that nothing was saved. */
  problem: string | null
}

interface FormBody { slug?: string, title?: string, body?: string, version?: string }
const DOCUMENT_FORM = textFields('slug', 'title', 'body', 'version')
interface SlugParams { slug: string }

const PAGE_SIZE = 50
const SEARCH_LIMIT = 20

/** The site's pages: browse, read, search, and for signed-in people create, edit and delete. */
const contentRoutes: FastifyPluginAsync = async function contentRoutes (fastify) {
  fastify.get('/', async function home (request, reply) {
    const db = request.unitOfWork!.db
    const [recent, total] = await Promise.all([listDocuments(db, { limit: 20, offset: 0 }), countDocuments(db)])
    return reply.render('home', { title: 'Home', recent, total })
  })

  fastify.get<{ Querystring: { page?: string } }>('/docs', async function listPage (request, reply) {
    const db = request.unitOfWork!.db
    const total = await countDocuments(db)
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE))
    const page = Math.min(pages, Math.max(1, Number.parseInt(request.query.page ?? '1', 10) || 1))
    const docs = await listDocuments(db, { limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE })
    return reply.render('docs', { title: 'All documents', docs, page, pages, total })
  })

  fastify.get<{ Querystring: { q?: string } }>('/search', { schema: { querystring: textFields('q') } }, async function searchPage (request, reply) {
    const query = (request.query.q ?? '').trim()
    const hits = query === '' ? [] : await fastify.catalog.search(request.unitOfWork!.db, query, SEARCH_LIMIT)
    return reply.render('search', { title: query === '' ? 'Search' : `Search: ${query}`, query, hits })
  })

  fastify.get('/docs/new', { preHandler: fastify.requireSignedIn }, async function newPage (_request, reply) {
    return reply.render('doc-form', { title: 'New document', ...emptyForm() })
  })

  fastify.post<{ Body: FormBody }>('/docs', {
    schema: { body: DOCUMENT_FORM },
    preHandler: fastify.requireSignedIn,
    errorHandler: refusedSave('create'),
  }, async function create (request, reply) {
    const body = request.body ?? {}
    const typedSlug = (body.slug ?? '').trim()
    const slug = typedSlug || slugify(body.title ?? '')
    const checked = validateDocumentInput(body)
    const errors: FieldErrors = checked.errors ?? {}
    const problem = slugProblem(slug)
    if (problem !== undefined) {
      // An empty address is made from the title; when the title is missing, saying that is enough.
      if (typedSlug !== '' || errors.title === undefined) errors.slug = problem
    } else if (await findDocument(request.unitOfWork!.db, slug) !== undefined) errors.slug = 'is already taken by another document'
    if (checked.errors !== undefined || Object.keys(errors).length > 0) throw invalidInput(errors)
    fastify.documents.create(request.unitOfWork!, slug, checked.value!, request.principal!.name)
    return reply.seeOther(`/docs/${slug}?saved=1`)
  })

  fastify.get<{ Params: SlugParams, Querystring: { saved?: string } }>('/docs/:slug', async function show (request, reply) {
    const doc = await requireDocument(request.unitOfWork!.db, request.params.slug)
    return reply.render('doc', { title: doc.title, doc, html: renderCached(doc.body), saved: request.query.saved === '1' })
  })

  fastify.get<{ Params: SlugParams }>('/docs/:slug/edit', { preHandler: fastify.requireSignedIn }, async function editPage (request, reply) {
    const doc = await requireDocument(request.unitOfWork!.db, request.params.slug)
    return reply.render('doc-form', {
      title: `Edit ${doc.title}`,
      action: 'edit',
      slug: doc.slug,
      docTitle: doc.title,
      body: doc.body,
      version: doc.version,
      errors: {},
      problem: null,
    })
  })

  fastify.post<{ Params: SlugParams, Body: FormBody }>('/docs/:slug', {
    schema: { body: DOCUMENT_FORM },
    preHandler: fastify.requireSignedIn,
    errorHandler: refusedSave('edit'),
  }, async function update (request, reply) {
    const doc = await requireDocument(request.unitOfWork!.db, request.params.slug)
    const body = request.body ?? {}
    const checked = validateDocumentInput(body)
    if (checked.errors !== undefined) throw invalidInput(checked.errors)
    assertSameVersion(doc, body.version)
    fastify.documents.update(request.unitOfWork!, doc, checked.value, request.principal!.name)
    return reply.seeOther(`/docs/${doc.slug}?saved=1`)
  })

  fastify.post<{ Params: SlugParams, Body: { version?: string } }>('/docs/:slug/delete', {
    schema: { body: textFields('version') },
    preHandler: fastify.requireSignedIn,
  }, async function remove (request, reply) {
    const doc = await requireDocument(request.unitOfWork!.db, request.params.slug)
    assertSameVersion(doc, request.body?.version)
    fastify.documents.delete(request.unitOfWork!, doc)
    return reply.seeOther('/')
  })
}

/** The form carries the version the person started from; a newer stored one means they would overwrite someone's work. */
function assertSameVersion (doc: Document, formVersion: string | undefined): void {
  if (formVersion === undefined || formVersion === '') return
  if (Number(formVersion) !== doc.version) {
    throw new ConflictError(`Someone else saved "${doc.title}" after you opened it (it is now at version ${doc.version}); your change was not saved`)
  }
}

function emptyForm (): DocumentForm {
  return { action: 'create', slug: '', docTitle: '', body: '', version: null, errors: {}, problem: null }
}

/**
 * A save that is refused, for whatever reason (bad input, a conflict, read-only maintenance,
 * an expired session), comes back as the form with everything the person typed, and says
 * plainly that it was not saved.
 */
function refusedSave (action: DocumentForm['action']) {
  return async function renderRefusedSave (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const shown = describeError(error)
    // Refused by the exclusive gate, before the body was even read: there is no text to give
    // back, so the root handler shows the maintenance page instead of an empty form.
    // A body that could not be read (too large, not a form) has no text to give back either.
    const unread = typeof request.body !== 'object' || request.body === null
    if (unread || shown.code === 'QUIESCE_INTERNAL' || shown.code === 'QUIESCE_NOT_FOUND' || shown.code === 'QUIESCE_EXCLUSIVE' || wantsJson(request)) throw error
    const fields = shown.details.fields as FieldErrors | undefined
    const body = (request.body ?? {}) as FormBody
    reply.code(shown.statusCode)
    return reply.render('doc-form', {
      title: action === 'create' ? 'New document (not saved)' : 'Edit (not saved)',
      action,
      slug: action === 'edit' ? (request.params as SlugParams).slug : body.slug ?? '',
      docTitle: body.title ?? '',
      body: body.body ?? '',
      version: body.version !== undefined && body.version !== '' ? Number(body.version) : null,
      errors: fields ?? {},
      problem: fields !== undefined ? 'Not saved: please correct the fields marked below.' : `Not saved. ${shown.message}`,
    })
  }
}

export default contentRoutes
