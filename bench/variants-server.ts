/**
 * `GET /docs/:slug` built up from the ceiling one piece of the app at a time, to see what each
 * piece costs per request (bench/variants.ts drives it). The pieces are the app's own plugins
 * and functions, configured as app/app.ts does:
 *
 *   logger   Fastify's pino logger at level warn (the app logs at QUIESCE_LOG_LEVEL)
 *   helmet   @fastify/helmet with the app's CSP
 *   session  the app's auth plugin: @fastify/cookie, @fastify/session (database store),
 *            @fastify/csrf-protection and the principal hook
 *   kysely   the read goes through requireDocument() on the read-only Kysely handle
 *            (otherwise: one better-sqlite3 statement prepared once)
 *   uow      the app's unit-of-work plugin wraps the handler
 *   maintenance  the app's maintenance plugin (gate, in-flight tracking, Quiesce-Mode header),
 *            as app/app.ts registers it; without it, a stand-in that only holds the state
 *   extras   @fastify/formbody, @fastify/static and @fastify/rate-limit (global: false)
 *
 * and two proposed changes, to measure them before anyone makes them in app/:
 *   static-headers  helmet's headers computed once at start and set with reply.headers()
 *                   (instead of @fastify/helmet, which rebuilds helmet's middleware per request)
 *   md-cache        rendered Markdown kept per document id and version (1000 entries)
 *
 * Always there: the app's view plugin (@fastify/view + eta, locals hook) and error plugin; without
 * `session`, a stand-in auth plugin that only says "anonymous".
 *
 * env: BENCH_DB_FILE (required), BENCH_WITH=comma list of the pieces above, HOST, PORT (0).
 */
import { mkdtempSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import fastifyFormbody from '@fastify/formbody'
import fastifyHelmet from '@fastify/helmet'
import fastifyRateLimit from '@fastify/rate-limit'
import fastifyStatic from '@fastify/static'
import BetterSqlite3 from 'better-sqlite3'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet from 'helmet'
import authPlugin from '../app/auth/plugin.js'
import { toMaintenancePrincipal, type Principal } from '../app/auth/principal.js'
import { requireDocument, type Document } from '../app/content/documents.js'
import { renderMarkdown } from '../app/content/markdown.js'
import { openDatabase } from '../app/db/database.js'
import databasePlugin from '../app/db/plugin.js'
import maintenancePlugin, { kyselyMaintenanceStore, pollingSignal, type MaintenanceController } from '../app/maintenance/index.js'
import { mayWrite } from '../app/maintenance/state.js'
import { PUBLIC_DIR } from '../app/paths.js'
import unitOfWorkPlugin from '../app/unit-of-work/plugin.js'
import { UnitOfWorkEngine } from '../app/unit-of-work/unit-of-work.js'
import errorPlugin from '../app/web/errors.js'
import viewPlugin from '../app/web/view.js'
import { readMaintenanceState } from './maintenance-banner.js'

const PIECES = ['logger', 'helmet', 'session', 'kysely', 'uow', 'maintenance', 'extras', 'static-headers', 'md-cache'] as const
const pieces = new Set((process.env.BENCH_WITH ?? '').split(',').map((piece) => piece.trim()).filter(Boolean))
for (const piece of pieces) if (!(PIECES as readonly string[]).includes(piece)) throw new Error(`unknown piece ${piece}; known: ${PIECES.join(', ')}`)
const file = process.env.BENCH_DB_FILE
if (file === undefined || file === '') throw new Error('BENCH_DB_FILE is required')

const database = await openDatabase({ kind: 'sqlite', file })
const sqlite = new BetterSqlite3(file, { readonly: true, fileMustExist: true })
const bySlug = sqlite.prepare<[string], Record<string, string | number>>('select * from document where slug = ?')

const app: FastifyInstance = Fastify({
  logger: pieces.has('logger') ? { level: 'warn' } : false,
  return503OnClosing: true,
  routerOptions: { ignoreTrailingSlash: true },
})
await app.register(databasePlugin, { database, closeOnShutdown: false })
const HELMET = {
  contentSecurityPolicy: {
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      objectSrc: ["'none'"],
      baseUri: ["'self'"],
      upgradeInsecureRequests: null,
    },
  },
}
if (pieces.has('helmet')) await app.register(fastifyHelmet, HELMET)
if (pieces.has('static-headers')) {
  // The same headers helmet would set, collected once from a stand-in response.
  const headers: Record<string, string> = {}
  const collector = {
    setHeader (name: string, value: string) { headers[name] = value },
    removeHeader (name: string) { delete headers[name] },
  }
  helmet(HELMET)({} as never, collector as never, () => {})
  app.addHook('onRequest', function staticSecurityHeaders (_request, reply, done) {
    reply.headers(headers)
    done()
  })
}
if (pieces.has('extras')) {
  await app.register(fastifyFormbody)
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', maxAge: '1h' })
  await app.register(fastifyRateLimit, { global: false })
}
if (pieces.has('session')) {
  await app.register(authPlugin, {
    sessionSecret: 'a benchmark session secret, long enough for the plugin',
    accessFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'quiesce-variant-')), 'access'),
  })
} else {
  await app.register(fp(async function anonymousOnly (fastify) {
    fastify.decorateRequest('principal', null)
    fastify.decorateRequest('authenticatedBy', null)
  }, { name: 'quiesce-auth', dependencies: ['quiesce-db'] }))
}
await app.register(viewPlugin)
await app.register(errorPlugin)
if (pieces.has('uow')) await app.register(unitOfWorkPlugin, { attempts: 3, principalOf: (request) => request.principal })
if (pieces.has('maintenance')) {
  await app.register(maintenancePlugin, {
    store: kyselyMaintenanceStore(database.writer),
    unitOfWork: pieces.has('uow') ? app.unitOfWork : new UnitOfWorkEngine({ writer: database.writer, reader: database.reader, attempts: 3, log: app.log }),
    principalOf: (request) => toMaintenancePrincipal(request.principal),
    identify: (principal) => toMaintenancePrincipal(principal as Principal | null),
    changeSignal: pollingSignal({ check: database.dataVersion! }),
    instanceId: `bench-variant-${process.pid}`,
    retryAfterSeconds: 300,
    alwaysOpenPrefixes: ['/static/'],
  })
} else {
  const state = readMaintenanceState(sqlite)
  const standIn: Pick<MaintenanceController, 'state' | 'mayWrite' | 'upcoming'> = { state, mayWrite: (principal) => mayWrite(state, principal), upcoming: null }
  app.decorate('maintenance', standIn as MaintenanceController)
}

app.get<{ Params: { slug: string }, Querystring: { saved?: string } }>('/docs/:slug', async function show (request, reply) {
  const doc = pieces.has('kysely')
    ? await requireDocument(request.unitOfWork?.db ?? database.reader, request.params.slug)
    : fromRow(bySlug.get(request.params.slug))
  return reply.render('doc', { title: doc.title, doc, html: pieces.has('md-cache') ? cachedMarkdown(doc) : renderMarkdown(doc.body), saved: request.query.saved === '1' })
})

const rendered = new Map<string, string>()
function cachedMarkdown (doc: Document): string {
  const key = `${doc.id}:${doc.version}`
  let html = rendered.get(key)
  if (html === undefined) {
    html = renderMarkdown(doc.body)
    if (rendered.size >= 1000) rendered.delete(rendered.keys().next().value as string)
    rendered.set(key, html)
  }
  return html
}

function fromRow (row: Record<string, string | number> | undefined): Document {
  if (row === undefined) throw new Error('no such document')
  return {
    id: row.id as number,
    slug: row.slug as string,
    title: row.title as string,
    body: row.body as string,
    version: row.version as number,
    createdBy: row.created_by as string,
    createdAt: row.created_at as string,
    updatedBy: row.updated_by as string,
    updatedAt: row.updated_at as string,
  }
}

const address = await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.stdout.write(`listening ${address}\n`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(() => {
      sqlite.close()
      return database.destroy()
    }).then(() => process.exit(0), () => process.exit(1))
  })
}
