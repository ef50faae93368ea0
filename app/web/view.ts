import fastifyView from '@fastify/view'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Eta } from 'eta'
import type { Principal } from '../auth/principal.js'
import type { MaintenanceController } from '../maintenance/index.js'
import type { MaintenanceWindow } from '../maintenance/store.js'
import { MODE_LABELS, publicState, type MaintenanceState, type Mode } from '../maintenance/state.js'
import { VIEWS_DIR } from '../paths.js'
import { maintenanceName, whatItMeansFor } from './banner.js'

/**
 * The data each page template receives. Feature folders add their pages by declaration
 * merging (`declare module '../web/view.js' { interface Pages { … } }`), so `reply.render`
 * checks every page's data at compile time.
 */

export interface Pages {}

/** What every page's layout reads, filled per request in `reply.locals`. */
interface Locals {
  principal: Principal | null
  path: string
  /** The header's "Sign in" link: back to this page afterwards. */
  signInHref: string
  /** Creating a CSRF token creates a session, so it happens only when a page has a form. */
  csrfToken: () => string
  maintenance: Banner
  /** Set on an instance whose database is a standby: every page says it is a read-only copy, and where the primary is. */
  readOnlyCopy: { primaryOrigin: string | null } | null
  [key: string]: unknown
}

/** What the maintenance banner and the edit buttons of a page show. */
export interface Banner {
  mode: Mode
  /** The mode's one label ({@link MODE_LABELS}). */
  label: string
  /** "Concurrent (read-only) maintenance": the banner's headline. */
  name: string
  /** What the maintenance means for this reader (see {@link whatItMeansFor}). */
  meaning: string
  version: number
  reason: string | null
  since: string
  until: string | null
  /** Only managers learn who the maintainer is ({@link publicState} decides, as for the API and the event stream). */
  maintainer: string | null
  /** Whether this reader's changes would be saved now. */
  canWrite: boolean
  /** Exclusive, and this reader is not let in: every page but sign-in leads to the closed page. */
  closed: boolean
  /** A scheduled window starting within a day, announced on every page. */
  upcoming: { mode: Mode, label: string, reason: string | null, startsAt: string, endsAt: string, minutes: number } | null
}

declare module 'fastify' {
  interface FastifyReply {
    locals: Locals
    render<P extends keyof Pages> (page: P, data: Pages[P] & PageFrame): Promise<string>
  }
}

/** What every page gives its layout besides its own data. */
interface PageFrame {
  title: string
  /**
   * The page's own content is the maintenance message (the closed page, a save refused by
   * maintenance), so the banner, which would say the same again, stays hidden.
   */
  stateInPage?: boolean
  /** The page has its own search box (home, search), so the header leaves its own out. */
  searchInPage?: boolean
}

const viewPlugin: FastifyPluginAsync = async function viewPlugin (fastify) {
  await fastify.register(fastifyView, {
    engine: { eta: new Eta({ autoEscape: true, autoTrim: [false, 'nl'] }) },
    root: VIEWS_DIR,
    production: true,
    defaultContext: VIEW_CONTEXT,
  })

  // The layout's per-request values are filled when a page renders (not for every request, and
  // as they are then: a page rendered after a refused commit shows the mode that refused it).
  fastify.decorateReply('render', async function render (this: FastifyReply, page: string, data: object) {
    fillPageLocals(this.request, this)
    this.type('text/html; charset=utf-8')
    return this.viewAsync(page, data)
  })
}

/** "812 bytes", "14.2 KB", "3.1 MB" (powers of 1024, one decimal). */
function formatBytes (bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 1024) return `${bytes} bytes`
  const units = ['KB', 'MB', 'GB', 'TB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]}`
}

/** "2026-11-22 14:05 UTC": one unambiguous time for every reader of the site. */
export function formatTime (iso: string | null | undefined): string {
  if (!iso) return ''
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`
}

/** What every template can use besides its data and the layout's locals. */
export const VIEW_CONTEXT = { siteName: 'Quiesce', formatTime, formatBytes, modeLabels: MODE_LABELS, maintenanceName }

const WITHOUT_MAINTENANCE: Banner = { mode: 'normal', label: MODE_LABELS.normal, name: maintenanceName('normal'), meaning: '', version: 0, reason: null, since: '', until: null, maintainer: null, canWrite: true, closed: false, upcoming: null }

function upcomingWindow (window: MaintenanceWindow | null): Banner['upcoming'] {
  if (window === null) return null
  const minutes = Math.ceil((Date.parse(window.startsAt) - Date.now()) / 60_000)
  if (minutes <= 0) return null
  return { mode: window.mode, label: maintenanceName(window.mode), reason: window.reason, startsAt: window.startsAt, endsAt: window.endsAt, minutes }
}

/**
 * Sign-in brings a person back to the page they were reading. The home page needs no `next`
 * (then a manager lands on the control panel), the sign-in page keeps its own, and the page of
 * a refused form (a POST) is not one to go back to by address.
 */
function signInHref (request: FastifyRequest): string {
  const path = request.url
  if (path === '/login' || path.startsWith('/login?')) return request.method === 'GET' ? path : '/login'
  if (path === '/' || path === '/maintenance' || request.method !== 'GET') return '/login'
  return `/login?next=${encodeURIComponent(path)}`
}

function fillPageLocals (request: FastifyRequest, reply: FastifyReply): void {
  reply.locals ??= {} as Locals
  reply.locals.principal = request.principal
  reply.locals.path = request.url
  reply.locals.signInHref = signInHref(request)
  reply.locals.csrfToken = () => reply.generateCsrf()
  reply.locals.readOnlyCopy = request.server.db.standby ? { primaryOrigin: request.server.config.primaryOrigin } : null
  // Undefined in a site built without maintenance mode (see AppOptions.maintenance).
  const maintenance = request.server.maintenance as MaintenanceController | undefined
  if (maintenance === undefined) {
    reply.locals.maintenance = WITHOUT_MAINTENANCE
    return
  }
  const canWrite = maintenance.mayWrite(request.principal)
  reply.locals.maintenance = pageBanner(maintenance.state, request.principal, canWrite, maintenance.upcoming)
}

/** What the banner and the edit buttons show a reader (`canWrite`: whether their changes would be saved now). */
export function pageBanner (state: MaintenanceState, principal: Principal | null, canWrite: boolean, upcoming: MaintenanceWindow | null): Banner {
  // What this reader may know of the state: the same as GET /api/maintenance tells them.
  const known = publicState(state, principal)
  // Property by property: on Node 20 `{ ...known, label, … }` costs about 1 µs for each
  // property after the spread, on every page (bench:maintenance gate-cpu).
  return {
    mode: known.mode,
    version: known.version,
    since: known.since,
    reason: known.reason,
    until: known.until,
    maintainer: known.maintainer,
    label: MODE_LABELS[state.mode],
    name: maintenanceName(state.mode),
    meaning: whatItMeansFor(state, principal, canWrite),
    canWrite,
    closed: state.mode === 'exclusive' && !canWrite,
    upcoming: upcomingWindow(upcoming),
  }
}

export default fp(viewPlugin, {
  fastify: '5.x',
  name: 'quiesce-view',
  dependencies: ['quiesce-auth'],
})
