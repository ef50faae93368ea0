/**
 * The ceiling for `GET /docs/:slug`: the least a server can do to answer it with the same page.
 * Same template (views/doc.eta inside views/layout.eta) through @fastify/view + eta configured
 * like app/web/view.ts (production), the same template data the app passes for an anonymous
 * visitor, the same Markdown renderer, and the same row of the same SQLite file, read through a
 * read-only better-sqlite3 statement prepared once. No logger, no other plugins, no hooks.
 * The maintenance banner's data is read once at start, as the app keeps the state in memory.
 *
 * env: BENCH_DB_FILE (required), HOST (127.0.0.1), PORT (0 = any). Prints `listening <url>`.
 */
import fastifyView from '@fastify/view'
import BetterSqlite3 from 'better-sqlite3'
import { Eta } from 'eta'
import Fastify from 'fastify'
import { renderMarkdown } from '../app/content/markdown.js'
import { VIEWS_DIR } from '../app/paths.js'
import { VIEW_CONTEXT } from '../app/web/view.js'
import { anonymousBanner, readMaintenanceState } from './maintenance-banner.js'

interface DocumentRow {
  id: number
  slug: string
  title: string
  body: string
  version: number
  created_by: string
  created_at: string
  updated_by: string
  updated_at: string
}

const file = process.env.BENCH_DB_FILE
if (file === undefined || file === '') throw new Error('BENCH_DB_FILE is required')

const sqlite = new BetterSqlite3(file, { readonly: true, fileMustExist: true })
sqlite.pragma('busy_timeout = 5000')
const bySlug = sqlite.prepare<[string], DocumentRow>('select * from document where slug = ?')
const maintenance = anonymousBanner(readMaintenanceState(sqlite))

const app = Fastify({ logger: false, routerOptions: { ignoreTrailingSlash: true } })
await app.register(fastifyView, {
  engine: { eta: new Eta({ autoEscape: true, autoTrim: [false, 'nl'] }) },
  root: VIEWS_DIR,
  production: true,
  defaultContext: VIEW_CONTEXT,
})

const noCsrfToken = (): string => {
  throw new Error('an anonymous doc page never asks for a CSRF token')
}

app.get<{ Params: { slug: string }, Querystring: { saved?: string } }>('/docs/:slug', async function show (request, reply) {
  const row = bySlug.get(request.params.slug)
  if (row === undefined) return reply.code(404).send('not found')
  const doc = {
    id: row.id,
    slug: row.slug,
    title: row.title,
    body: row.body,
    version: row.version,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedBy: row.updated_by,
    updatedAt: row.updated_at,
  }
  reply.type('text/html; charset=utf-8')
  // What the app's layout locals and the doc page pass (app/web/view.ts, app/content/routes.ts).
  return reply.viewAsync('doc', {
    principal: null,
    path: request.url,
    signInHref: `/login?next=${encodeURIComponent(request.url)}`,
    csrfToken: noCsrfToken,
    maintenance,
    title: doc.title,
    doc,
    html: renderMarkdown(doc.body),
    saved: request.query.saved === '1',
  })
})

const address = await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.stdout.write(`listening ${address}\n`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.close().then(() => {
      sqlite.close()
      process.exit(0)
    }, () => process.exit(1))
  })
}
