import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { signedIn } from '../auth/plugin.js'
import { ConflictError, ExclusiveError, InternalError, invalidInput, NotFoundError, ReadOnlyError, UnauthorizedError, type FieldErrors } from '../errors.js'
import type { SearchHit } from './catalog.js'
import { countDocuments, findDocument, listDocuments, requireDocument, type Document, type DocumentSummary } from './documents.js'
import { renderCached } from './markdown.js'
import { slugify, slugProblem, validateDocumentInput } from './validation.js'
import { maintenanceName } from '../web/banner.js'
import { describeError, wantsJson } from '../web/errors.js'
import { textFields } from '../web/forms.js'

declare module '../web/view.js' {
  interface Pages {
    home: { recent: DocumentSummary[], total: number }
    docs: { docs: DocumentSummary[], page: number, pages: number, total: number }
    doc: { doc: Document, html: string, saved: boolean }
    'doc-form': DocumentForm
    search: { query: string, hits: SearchHit[], total: number, page: number, pages: number, first: number }
  }
}

interface DocumentForm {
  /** `create` posts to /docs, `edit` to /docs/:slug. */
  action: 'create' | 'edit'
  slug: string
  docTitle: string
  body: string
  version: number | null
  errors: FieldErrors
  /** Shown above the form when a save was refused. */
  notSaved: NotSaved | null
}

/** Why a save was refused, in one message, and, when maintenance refused it, when to try again. */
interface NotSaved {
  /** Whole sentences. */
  message: string
  /** Refused by the maintenance: its expected end (if known) and Retry-After's seconds. */
  retry: { until: string | null, seconds: number } | null
}

interface FormBody { slug?: string, title?: string, body?: string, version?: string }
const DOCUMENT_FORM = textFields('slug', 'title', 'body', 'version')
interface SlugParams { slug: string }

const PAGE_SIZE = 50
const SEARCH_PAGE_SIZE = 20

/** The site's pages: browse, read, search, and for signed-in people create, edit and delete. */
const contentRoutes: FastifyPluginAsync = async function contentRoutes (fastify) {
  fastify.get('/', async function home (request, reply) {
    const db = request.unitOfWork.db
    const [recent, total] = await Promise.all([listDocuments(db, { limit: 20, offset: 0 }), countDocuments(db)])
    return reply.render('home', { title: 'Home', searchInPage: true, recent, total })
  })

  fastify.get<{ Querystring: { page?: string } }>('/docs', async function listPage (request, reply) {
    const db = request.unitOfWork.db
    const total = await countDocuments(db)
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE))
    const page = Math.min(pages, Math.max(1, Number.parseInt(request.query.page ?? '1', 10) || 1))
    const docs = await listDocuments(db, { limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE })
    return reply.render('docs', { title: 'All documents', docs, page, pages, total })
  })

  fastify.get<{ Querystring: { q?: string, page?: string } }>('/search', { schema: { querystring: textFields('q', 'page') } }, async function searchPage (request, reply) {
    const db = request.unitOfWork.db
    const query = (request.query.q ?? '').trim()
    const total = query === '' ? 0 : await fastify.catalog.count(db, query)
    const pages = Math.max(1, Math.ceil(total / SEARCH_PAGE_SIZE))
    const page = Math.min(pages, Math.max(1, Number.parseInt(request.query.page ?? '1', 10) || 1))
    const first = (page - 1) * SEARCH_PAGE_SIZE
    const hits = total === 0 ? [] : await fastify.catalog.search(db, query, SEARCH_PAGE_SIZE, first)
    const title = query === '' ? 'Search' : `Search: ${query}${page > 1 ? ` (page ${page})` : ''}`
    return reply.render('search', { title, searchInPage: true, query, hits, total, page, pages, first: first + 1 })
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
    } else if (await findDocument(request.unitOfWork.db, slug) !== undefined) errors.slug = 'is already taken by another document'
    if (checked.errors !== undefined || Object.keys(errors).length > 0) throw invalidInput(errors)
    fastify.documents.create(request.unitOfWork, slug, checked.value!, signedIn(request).name)
    return reply.seeOther(`/docs/${slug}?saved=1`)
  })

  fastify.get<{ Params: SlugParams, Querystring: { saved?: string } }>('/docs/:slug', async function show (request, reply) {
    const doc = await requireDocument(request.unitOfWork.db, request.params.slug)
    return reply.render('doc', { title: doc.title, doc, html: renderCached(doc.body), saved: request.query.saved === '1' })
  })

  fastify.get<{ Params: SlugParams }>('/docs/:slug/edit', { preHandler: fastify.requireSignedIn }, async function editPage (request, reply) {
    const doc = await requireDocument(request.unitOfWork.db, request.params.slug)
    return reply.render('doc-form', {
      title: `Edit ${doc.title}`,
      action: 'edit',
      slug: doc.slug,
      docTitle: doc.title,
      body: doc.body,
      version: doc.version,
      errors: {},
      notSaved: null,
    })
  })

  fastify.post<{ Params: SlugParams, Body: FormBody }>('/docs/:slug', {
    schema: { body: DOCUMENT_FORM },
    preHandler: fastify.requireSignedIn,
    errorHandler: refusedSave('edit'),
  }, async function update (request, reply) {
    const doc = await requireDocument(request.unitOfWork.db, request.params.slug)
    const body = request.body ?? {}
    const checked = validateDocumentInput(body)
    if (checked.errors !== undefined) throw invalidInput(checked.errors)
    assertSameVersion(doc, body.version)
    fastify.documents.update(request.unitOfWork, doc, checked.value, signedIn(request).name)
    return reply.seeOther(`/docs/${doc.slug}?saved=1`)
  })

  fastify.post<{ Params: SlugParams, Body: { version?: string } }>('/docs/:slug/delete', {
    schema: { body: textFields('version') },
    preHandler: fastify.requireSignedIn,
  }, async function remove (request, reply) {
    const doc = await requireDocument(request.unitOfWork.db, request.params.slug)
    assertSameVersion(doc, request.body?.version)
    fastify.documents.delete(request.unitOfWork, doc)
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
  return { action: 'create', slug: '', docTitle: '', body: '', version: null, errors: {}, notSaved: null }
}

/**
 * A save that is refused, for whatever reason (bad input, a conflict, read-only maintenance,
 * an expired session), comes back as the form with everything the person typed, and says
 * plainly, once, that it was not saved and why.
 */
function refusedSave (action: DocumentForm['action']) {
  return async function renderRefusedSave (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const shown = describeError(error)
    // Refused by the exclusive gate, before the body was even read: there is no text to give
    // back, so the root handler shows the maintenance page instead of an empty form.
    // A body that could not be read (too large, not a form) has no text to give back either.
    const unread = typeof request.body !== 'object' || request.body === null
    if (unread || shown.error instanceof InternalError || shown.error instanceof NotFoundError || shown.error instanceof ExclusiveError || wantsJson(request)) throw error
    const fields = shown.details.fields as FieldErrors | undefined
    const body = (request.body ?? {}) as FormBody
    const byMaintenance = shown.error instanceof ReadOnlyError
    reply.code(shown.statusCode)
    return reply.render('doc-form', {
      title: action === 'create' ? 'New document (not saved)' : 'Edit (not saved)',
      // The refusal says all the banner would: once is enough.
      stateInPage: byMaintenance,
      action,
      slug: action === 'edit' ? (request.params as SlugParams).slug : body.slug ?? '',
      docTitle: body.title ?? '',
      body: body.body ?? '',
      version: body.version !== undefined && body.version !== '' ? Number(body.version) : null,
      errors: fields ?? {},
      notSaved: {
        message: fields !== undefined ? 'Please correct the fields marked below.' : whyNotSaved(shown.error, request),
        retry: byMaintenance ? { until: request.server.maintenance.state.until, seconds: request.server.maintenance.retryAfter() } : null,
      },
    })
  }
}

function whyNotSaved (error: Error, request: FastifyRequest): string {
  if (error instanceof ReadOnlyError) {
    const { reason } = request.server.maintenance.state
    return `The site is in ${maintenanceName('concurrent')}, so changes cannot be saved until it ends.${reason ? ` The reason given: ${asSentence(reason)}` : ''}`
  }
  if (error instanceof UnauthorizedError) return 'You are not signed in (your session may have ended). Copy your text, sign in, and save it again.'
  return asSentence(error.message)
}

function asSentence (text: string): string {
  const trimmed = text.trim()
  return /[.!?…]$/.test(trimmed) ? trimmed : `${trimmed}.`
}

export default contentRoutes
