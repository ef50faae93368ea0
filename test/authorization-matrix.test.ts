import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Mode } from '../app/maintenance/index.js'
import { hashPassword } from '../app/auth/passwords.js'
import { insertUser } from '../app/auth/users.js'
import { startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { codeOf, describeAnswer, type Answer } from './helpers/answers.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, readState, switchTo } from './helpers/maintenance.js'
import { ACCOUNTS, addPrincipals, anonymousBrowser, basicOf, freshAddress, PRINCIPALS, signedInBrowser, type PrincipalKind } from './helpers/principals.js'
import { rawRequest, type RawResponse } from './helpers/raw-http.js'
import { recordedRouteKeys } from './helpers/app-recorder.js'
import { dataSnapshot, snapshotChanges } from './helpers/snapshot.js'
import { until } from './helpers/wait.js'

vi.mock('fastify', async (importOriginal) => (await import('./helpers/app-recorder.js')).recordingFastify(await importOriginal()))

/*
 * Who may do what, in which mode: every route the app registers × the five principals × the
 * three modes, as data to check against PRODUCT §2 (modes, always-open routes), §4.3 and §4.4.
 * A cell is the status, and the error code where the answer is refused. The routes are
 * collected from the app itself (test/helpers/app-recorder.ts), so a new route without a row
 * here fails the first test; `HEAD` routes, which Fastify adds for each `GET`, answer as their
 * `GET` (without a body).
 *
 * Principals authenticate as a browser does: the session cookie of the sign-in form, and for
 * unsafe methods its CSRF token (`_csrf` in forms, `x-csrf-token` for the JSON API). Routes of
 * the JSON API are also tried with HTTP Basic credentials instead, and every unsafe route also
 * without the CSRF token. The maintainer is the manager who switched the mode; in normal mode
 * there is no maintainer, and that column is just a manager's.
 */

const OK = '200'
const CREATED = '201'
const ACCEPTED = '202'
const EMPTY = '204'
const REDIRECT = '303'
/** The sign-in page again, saying the name or password is wrong. */
const WRONG_PASSWORD = '401'
const SIGN_IN = '401 QUIESCE_UNAUTHORIZED'
/** Managers (and the emergency user) only: a member's role may not. */
const ROLE = '403 QUIESCE_FORBIDDEN'
const NOT_MANAGER = '403 QUIESCE_NOT_MANAGER'
const NOT_MAINTAINER = '403 QUIESCE_NOT_MAINTAINER'
const CSRF = '403 QUIESCE_CSRF_INVALID'
/** The state change was based on a version that is not the current one. */
const STALE = '409 QUIESCE_STATE_CONFLICT'
const READ_ONLY = '503 QUIESCE_READ_ONLY'
const CLOSED = '503 QUIESCE_EXCLUSIVE'

type Cell = string
/** anonymous, member, manager, maintainer, emergency */
type Row = readonly [Cell, Cell, Cell, Cell, Cell]

/** What a cell's request sends: its URL (with the fixtures made for it) and its body. */
interface CellRequest {
  url: string
  form?: Record<string, string>
  json?: Record<string, unknown>
}

interface Fixtures {
  /** A number of its own for each cell. */
  next (): number
  /** A new document, saved by the emergency user; its slug. */
  document (): Promise<string>
  /** Times of a window of its own, far in the future. */
  windowTimes (): { startsAt: string, endsAt: string }
  /** A new scheduled window; its id. */
  window (): Promise<number>
  /** The current state's version. */
  version (): Promise<number>
  /** A document that every cell reads and edits. */
  readonly shared: string
  /** A member whose role managers set. */
  readonly member: string
  /** A new member, enabled or already disabled; their name. */
  user (state: 'enabled' | 'disabled'): Promise<string>
  /** A new password reset link for `username`; its token. */
  reset (username: string): Promise<string>
  /** A reset link that every cell opens (opening it uses nothing up). */
  readonly resetToken: string
  /** A finished export: a task to read, to cancel (which changes nothing) and to download. */
  readonly task: number
}

interface Entry {
  route: string
  request (fixtures: Fixtures): Promise<CellRequest> | CellRequest
  normal: Row
  concurrent: Row
  exclusive: Row
  /**
   * `data`: an answered request writes the site's data (or tasks, windows, users) and a refused
   * one writes nothing. `audit`: a request that reaches the maintenance rules is written to the
   * audit log, refused or not, and nothing else changes. Otherwise nothing is written.
   */
  writes?: 'data' | 'audit'
  /** An event stream: tried over a real connection, read until its first event. */
  stream?: boolean
}

const MATRIX: Entry[] = [
  // Always open (§2.3): sign-in, sign-out, static files, health, the state and the maintenance page.
  {
    route: 'GET /login',
    request: () => ({ url: '/login' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    // A signed-in browser signs in again with its own password; a visitor with a wrong one.
    route: 'POST /login',
    request: (f) => ({ url: '/login', form: { username: `nobody-${f.next()}`, password: 'wrong-password' } }),
    normal: [WRONG_PASSWORD, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [WRONG_PASSWORD, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
    exclusive: [WRONG_PASSWORD, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /logout',
    request: () => ({ url: '/logout', form: {} }),
    normal: [REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
    exclusive: [REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
  },
  {
    route: 'GET /static/*',
    request: () => ({ url: '/static/quiesce.css' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    route: 'GET /healthz',
    request: () => ({ url: '/healthz' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    route: 'GET /api/maintenance',
    request: () => ({ url: '/api/maintenance' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    route: 'GET /maintenance',
    request: () => ({ url: '/maintenance' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    // Open so that every open page can fetch its reader's banner after a change (README).
    route: 'GET /maintenance/banner',
    request: () => ({ url: '/maintenance/banner?version=1' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    // Open so that a maintenance page learns when the site is back (README).
    route: 'GET /api/maintenance/events',
    request: () => ({ url: '/api/maintenance/events' }),
    stream: true,
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    // Scheduled and active windows are announced to everyone (README).
    route: 'GET /api/maintenance/windows',
    request: () => ({ url: '/api/maintenance/windows' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [OK, OK, OK, OK, OK],
  },
  {
    // Open in every mode so that every attempt meets the rules (§2.1) and the audit log. Each
    // cell names a version that is not the current one: a principal who gets past the rules
    // about who may change the state learns that (409) and changes nothing.
    route: 'PUT /api/maintenance',
    request: async (f) => ({ url: '/api/maintenance', json: { mode: 'exclusive', reason: 'matrix', expectedVersion: await f.version() + 1 } }),
    writes: 'audit',
    normal: [SIGN_IN, NOT_MANAGER, STALE, STALE, STALE],
    concurrent: [SIGN_IN, NOT_MANAGER, NOT_MAINTAINER, STALE, STALE],
    exclusive: [SIGN_IN, NOT_MANAGER, NOT_MAINTAINER, STALE, STALE],
  },

  // The site's pages (§4.3): anyone reads in normal and concurrent mode; signed-in people write
  // in normal mode; in concurrent mode only the maintainer's and the emergency user's writes
  // commit; in exclusive mode only they get past the gate.
  {
    route: 'GET /',
    request: () => ({ url: '/' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /docs',
    request: () => ({ url: '/docs' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /search',
    request: () => ({ url: '/search?q=matrix' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /docs/:slug',
    request: (f) => ({ url: `/docs/${f.shared}` }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /docs/new',
    request: () => ({ url: '/docs/new' }),
    normal: [SIGN_IN, OK, OK, OK, OK],
    concurrent: [SIGN_IN, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /docs/:slug/edit',
    request: (f) => ({ url: `/docs/${f.shared}/edit` }),
    normal: [SIGN_IN, OK, OK, OK, OK],
    concurrent: [SIGN_IN, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /docs',
    request: (f) => {
      const n = f.next()
      return { url: '/docs', form: { slug: `matrix-new-${n}`, title: `Matrix new ${n}`, body: 'Created by the matrix.' } }
    },
    writes: 'data',
    normal: [SIGN_IN, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, READ_ONLY, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /docs/:slug',
    request: (f) => ({ url: `/docs/${f.shared}`, form: { title: `Shared, edit ${f.next()}`, body: 'Edited by the matrix.', version: '' } }),
    writes: 'data',
    normal: [SIGN_IN, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, READ_ONLY, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /docs/:slug/delete',
    request: async (f) => ({ url: `/docs/${await f.document()}/delete`, form: {} }),
    writes: 'data',
    normal: [SIGN_IN, REDIRECT, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, READ_ONLY, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },

  // The documents API (§4.4), by the same rules.
  {
    route: 'GET /api/docs',
    request: () => ({ url: '/api/docs' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /api/docs/:slug',
    request: (f) => ({ url: `/api/docs/${f.shared}` }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /api/search',
    request: () => ({ url: '/api/search?q=matrix' }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'PUT /api/docs/:slug',
    request: (f) => {
      const n = f.next()
      return { url: `/api/docs/matrix-put-${n}`, json: { title: `Matrix put ${n}`, body: 'Put by the matrix.' } }
    },
    writes: 'data',
    normal: [SIGN_IN, CREATED, CREATED, CREATED, CREATED],
    concurrent: [SIGN_IN, READ_ONLY, READ_ONLY, CREATED, CREATED],
    exclusive: [CLOSED, CLOSED, CLOSED, CREATED, CREATED],
  },
  {
    route: 'DELETE /api/docs/:slug',
    request: async (f) => ({ url: `/api/docs/${await f.document()}` }),
    writes: 'data',
    normal: [SIGN_IN, EMPTY, EMPTY, EMPTY, EMPTY],
    concurrent: [SIGN_IN, READ_ONLY, READ_ONLY, EMPTY, EMPTY],
    exclusive: [CLOSED, CLOSED, CLOSED, EMPTY, EMPTY],
  },

  // Inspecting maintenance: managers and the emergency user (§4.4).
  {
    route: 'GET /api/maintenance/log',
    request: () => ({ url: '/api/maintenance/log?limit=5' }),
    normal: [SIGN_IN, NOT_MANAGER, OK, OK, OK],
    concurrent: [SIGN_IN, NOT_MANAGER, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /api/instances',
    request: () => ({ url: '/api/instances' }),
    normal: [SIGN_IN, NOT_MANAGER, OK, OK, OK],
    concurrent: [SIGN_IN, NOT_MANAGER, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  // Scheduled windows are maintenance state, not site data (like the state itself): a manager
  // schedules and cancels them in concurrent mode too; exclusive mode keeps other managers out.
  {
    route: 'POST /api/maintenance/windows',
    request: (f) => ({ url: '/api/maintenance/windows', json: { mode: 'concurrent', reason: 'matrix', ...f.windowTimes() } }),
    writes: 'data',
    normal: [SIGN_IN, NOT_MANAGER, CREATED, CREATED, CREATED],
    concurrent: [SIGN_IN, NOT_MANAGER, CREATED, CREATED, CREATED],
    exclusive: [CLOSED, CLOSED, CLOSED, CREATED, CREATED],
  },
  {
    route: 'DELETE /api/maintenance/windows/:id',
    request: async (f) => ({ url: `/api/maintenance/windows/${await f.window()}` }),
    writes: 'data',
    normal: [SIGN_IN, NOT_MANAGER, EMPTY, EMPTY, EMPTY],
    concurrent: [SIGN_IN, NOT_MANAGER, EMPTY, EMPTY, EMPTY],
    exclusive: [CLOSED, CLOSED, CLOSED, EMPTY, EMPTY],
  },

  // The control panel (§4.3): managers and the emergency user.
  {
    route: 'GET /manage',
    request: () => ({ url: '/manage' }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    // Judged by the maintenance rules for anyone signed in, and audited (like PUT /api/maintenance).
    route: 'POST /manage/maintenance',
    request: async (f) => ({ url: '/manage/maintenance', form: { mode: 'exclusive', reason: 'matrix', until: '', expectedVersion: String(await f.version() + 1) } }),
    writes: 'audit',
    normal: [SIGN_IN, NOT_MANAGER, STALE, STALE, STALE],
    concurrent: [SIGN_IN, NOT_MANAGER, NOT_MAINTAINER, STALE, STALE],
    exclusive: [CLOSED, CLOSED, CLOSED, STALE, STALE],
  },
  {
    route: 'GET /manage/log',
    request: () => ({ url: '/manage/log' }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /manage/log.csv',
    request: () => ({ url: '/manage/log.csv' }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /manage/sign-ins',
    request: () => ({ url: '/manage/sign-ins' }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /manage/windows',
    request: (f) => {
      const { startsAt, endsAt } = f.windowTimes()
      return { url: '/manage/windows', form: { mode: 'concurrent', reason: 'matrix', startsAt, endsAt } }
    },
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /manage/windows/:id/cancel',
    request: async (f) => ({ url: `/manage/windows/${await f.window()}/cancel`, form: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'GET /manage/users',
    request: () => ({ url: '/manage/users' }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  // Users are site data: in concurrent mode another manager's change is aborted at commit.
  {
    route: 'POST /manage/users',
    request: (f) => ({ url: '/manage/users', form: { username: `matrix-user-${f.next()}`, password: 'matrix-password', role: 'member' } }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /manage/users/:username/disable',
    request: async (f) => ({ url: `/manage/users/${await f.user('enabled')}/disable`, form: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /manage/users/:username/enable',
    request: async (f) => ({ url: `/manage/users/${await f.user('disabled')}/enable`, form: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /manage/users/:username/remove',
    request: async (f) => ({ url: `/manage/users/${await f.user('disabled')}/remove`, form: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    // The one-time link is shown on the users page at once (200), not after a redirect.
    route: 'POST /manage/users/:username/reset',
    request: async (f) => ({ url: `/manage/users/${await f.user('enabled')}/reset`, form: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, READ_ONLY, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  // Whoever holds a reset link opens it and sets the password: a write like any other.
  {
    route: 'GET /reset/:token',
    request: (f) => ({ url: `/reset/${f.resetToken}` }),
    normal: [OK, OK, OK, OK, OK],
    concurrent: [OK, OK, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /reset',
    request: async (f) => ({ url: '/reset', form: { token: await f.reset(await f.user('enabled')), password: 'a-new-password', again: 'a-new-password' } }),
    writes: 'data',
    normal: [OK, OK, OK, OK, OK],
    concurrent: [READ_ONLY, READ_ONLY, READ_ONLY, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /manage/users/:username/role',
    request: (f) => ({ url: `/manage/users/${f.member}/role`, form: { role: 'member' } }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, READ_ONLY, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },

  // Tasks (README: Tasks): managers start, watch and cancel them in every mode they can reach;
  // a task started by someone who may not write now waits, paused, until they may.
  {
    route: 'GET /manage/tasks',
    request: () => ({ url: '/manage/tasks' }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /manage/tasks/reindex',
    request: () => ({ url: '/manage/tasks/reindex', form: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'POST /manage/tasks/export',
    request: () => ({ url: '/manage/tasks/export', form: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'GET /manage/tasks/:id',
    request: (f) => ({ url: `/manage/tasks/${f.task}` }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /manage/tasks/:id/cancel',
    request: (f) => ({ url: `/manage/tasks/${f.task}/cancel`, form: {} }),
    normal: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    concurrent: [SIGN_IN, ROLE, REDIRECT, REDIRECT, REDIRECT],
    exclusive: [CLOSED, CLOSED, CLOSED, REDIRECT, REDIRECT],
  },
  {
    route: 'GET /manage/tasks/:id/download',
    request: (f) => ({ url: `/manage/tasks/${f.task}/download` }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /api/tasks/reindex',
    request: () => ({ url: '/api/tasks/reindex', json: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, ACCEPTED, ACCEPTED, ACCEPTED],
    concurrent: [SIGN_IN, ROLE, ACCEPTED, ACCEPTED, ACCEPTED],
    exclusive: [CLOSED, CLOSED, CLOSED, ACCEPTED, ACCEPTED],
  },
  {
    route: 'POST /api/tasks/export',
    request: () => ({ url: '/api/tasks/export', json: {} }),
    writes: 'data',
    normal: [SIGN_IN, ROLE, ACCEPTED, ACCEPTED, ACCEPTED],
    concurrent: [SIGN_IN, ROLE, ACCEPTED, ACCEPTED, ACCEPTED],
    exclusive: [CLOSED, CLOSED, CLOSED, ACCEPTED, ACCEPTED],
  },
  {
    route: 'GET /api/tasks/:id',
    request: (f) => ({ url: `/api/tasks/${f.task}` }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'POST /api/tasks/:id/cancel',
    request: (f) => ({ url: `/api/tasks/${f.task}/cancel`, json: {} }),
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
  {
    route: 'GET /api/tasks/:id/events',
    request: (f) => ({ url: `/api/tasks/${f.task}/events` }),
    stream: true,
    normal: [SIGN_IN, ROLE, OK, OK, OK],
    concurrent: [SIGN_IN, ROLE, OK, OK, OK],
    exclusive: [CLOSED, CLOSED, CLOSED, OK, OK],
  },
]

const MODES: Mode[] = ['normal', 'concurrent', 'exclusive']
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
const GATE_CODES = ['QUIESCE_EXCLUSIVE', 'QUIESCE_READ_ONLY']

function isJsonRoute (url: string): boolean {
  return url.startsWith('/api/') || url.startsWith('/healthz')
}

function parseCell (cell: Cell): { status: number, code: string | undefined } {
  const [status, code] = cell.split(' ')
  return { status: Number(status), code }
}

/** A HEAD route answers as its GET; `GET /a` and `HEAD /a` are one entry. Event streams have no HEAD route. */
function entryKeys (entry: Entry): string[] {
  return entry.route.startsWith('GET ') && entry.stream !== true ? [entry.route, entry.route.replace(/^GET /, 'HEAD ')] : [entry.route]
}

/** The audit rows a refused cell adds: one when the attempt reached the rules (§2.1: every attempt is logged). */
function auditRowsFor (entry: Entry, expected: Cell): number {
  if (entry.writes !== 'audit') return 0
  const { code } = parseCell(expected)
  return code === 'QUIESCE_NOT_MANAGER' || code === 'QUIESCE_NOT_MAINTAINER' || code === 'QUIESCE_STATE_CONFLICT' ? 1 : 0
}

/** Each kind of request a cell is tried with. */
type Variant = 'browser' | 'browser without CSRF token' | 'HTTP Basic' | 'HEAD'

/**
 * What a cell answers to a variant of its request: a browser without the CSRF token is refused
 * before the route's own checks (the gate still comes first), except on the API for visitors,
 * who carry no authority a forged request could borrow (app/auth/plugin.ts).
 */
function expectedFor (entry: Entry, principal: PrincipalKind, cell: Cell, variant: Variant): Cell {
  if (variant !== 'browser without CSRF token') return cell
  if (cell === CLOSED) return CLOSED
  if (principal === 'anonymous' && entry.route.split(' ')[1]!.startsWith('/api/')) return cell
  return CSRF
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** The request tricks of the second half: each aims at a route of the matrix and must get no further than it. */
interface Trick { method: string, target: string, route: string, headers?: Record<string, string> }

const PATH_TRICKS: Array<{ route: string, targets: (f: Fixtures) => string[] }> = [
  {
    route: 'GET /manage',
    targets: () => [
      '//manage', '/MANAGE', '/Manage', '/manage/', '/manage//', '/manage?', '/manage?x=1&x=2', '/manage#top', '/manage%2F',
      '/%6danage', '/%6D%61%6E%61%67%65', '/./manage', '/manage/.', '/manage/..', '/%2e/manage', '/%2e%2e/manage', '/..%2fmanage',
      '/static/../manage', '/static/%2e%2e/manage', '/static/%2E%2E/manage', '/static/..%2fmanage', '/static/..%2Fmanage',
      '/static/%2e%2e%2fmanage', '/static/%252e%252e/manage', '/static/%252e%252e%252fmanage', '/static/..%5cmanage',
      '/static/..\\manage', '/static//../manage', '/static/./../manage', '/static/quiesce.css/../../manage', '/static%2f..%2fmanage',
      '/static/..%c0%afmanage', '/static/%c0%ae%c0%ae/manage', '/static/%ff/../manage', '/static/../%6danage',
      '/login/../manage', '/healthz/../manage', '/maintenance/../manage', '/api/maintenance/../../manage', '/login%2f..%2fmanage',
      '/manage;.css', '/manage;jsessionid=1', '/manage%00', '/manage%20', '/manage%09', '/manage.json', '/manage%', '/manage?%',
      '/manage?next=%ZZ', '/manage?__proto__[x]=1', '/manage?constructor.prototype.x=1',
      'http://evil.example/manage', 'http://evil.example/static/../manage',
    ],
  },
  {
    route: 'GET /manage/log',
    targets: () => [
      '/manage%2Flog', '/manage%2flog', '/manage/%2e%2e/manage/log', '/manage/./log', '/manage//log', '/MANAGE/LOG',
      '/static/../manage/log', '/manage/log/', '/manage/log?before=1&before=2', '/manage/tasks/../log', '/manage/log?before=-1',
    ],
  },
  {
    route: 'GET /manage/users',
    targets: () => ['/manage/users/', '/manage%2fusers', '/static/../manage/users', '/manage/Users', '/manage/users;x'],
  },
  {
    route: 'GET /docs/new',
    targets: () => ['/docs/new/', '/docs/%6eew', '/docs//new', '/static/../docs/new', '/docs/NEW'],
  },
  {
    route: 'GET /api/maintenance/log',
    targets: () => [
      '/api/maintenance%2Flog', '/api//maintenance/log', '/API/maintenance/log', '/api/maintenance/log/', '/api/maintenance/./log',
      '/api/maintenance/%2e%2e/maintenance/log', '/static/../api/maintenance/log', '/api/maintenance/log?limit=1&limit=2',
      '/api/maintenance/log%3Flimit=1', '/api/maintenance/events/../log', '/healthz/../api/maintenance/log',
      '/api/maintenance/log#', '/%61pi/maintenance/log', 'http://evil.example/api/maintenance/log', '/api/maintenance/log?limit[]=1',
    ],
  },
  {
    route: 'GET /api/instances',
    targets: () => ['/api/instances/', '/api/instances%2F', '/%61pi/instances', '/api/%69nstances', '/api/maintenance/../instances', '/api/instances?', '/api/instances;x'],
  },
  {
    route: 'GET /api/tasks/:id',
    targets: (f) => [`/api/tasks/${f.task}/`, `/api/tasks/%2e%2e/tasks/${f.task}`, `/api/tasks/${f.task}%2f`, `/api/tasks/${f.task}.0`, `/api/tasks/+${f.task}`, `/api/tasks/0x${f.task.toString(16)}`, `/API/tasks/${f.task}`],
  },
  {
    route: 'GET /manage/tasks/:id/download',
    targets: (f) => [`/manage/tasks/${f.task}/download/`, `/manage/tasks/${f.task}/download%2f..%2f..%2f..%2fsession-secret`, `/static/../manage/tasks/${f.task}/download`, `/manage/tasks/${f.task}/%64ownload`],
  },
  {
    route: 'POST /manage/users',
    targets: () => ['/manage/users/', '/MANAGE/users', '/manage%2Fusers', '/static/../manage/users', '//manage/users', '/manage/users?x=1', '/%6danage/users', 'http://evil.example/manage/users'],
  },
  {
    route: 'POST /docs',
    targets: () => ['/docs/', '/DOCS', '/static/../docs', '/docs?', '/docs/%2e', '/%64ocs', '/static/%2e%2e/docs'],
  },
  {
    route: 'PUT /api/docs/:slug',
    targets: (f) => {
      const slug = `matrix-trick-${f.next()}`
      return [`/api/docs/${slug}/`, `/api/docs/%2e%2e%2f${slug}`, `/API/docs/${slug}`, `/static/../api/docs/${slug}`, `/api/docs/..%2fdocs%2f${slug}`, `/%61pi/docs/${slug}`, `/api//docs/${slug}`]
    },
  },
  {
    route: 'PUT /api/maintenance',
    targets: () => ['/api/maintenance/', '/api/maintenance?', '/API/maintenance', '/static/../api/maintenance', '/%61pi/maintenance', '/api/maintenance%2f'],
  },
]

/** Other methods than the route's: none is a way in (Fastify has no method override). */
const METHOD_TRICKS: Array<[method: string, target: string, route: string]> = [
  ['HEAD', '/manage', 'GET /manage'], ['OPTIONS', '/manage', 'GET /manage'], ['OPTIONS', '*', 'GET /manage'],
  // Node takes the asterisk-form target `*` for `/`: the home page, by the home page's rules.
  ['GET', '*', 'GET /'], ['POST', '*', 'POST /docs'],
  ['TRACE', '/manage', 'GET /manage'], ['PATCH', '/manage', 'GET /manage'], ['PROPFIND', '/manage', 'GET /manage'],
  ['POST', '/manage', 'GET /manage'], ['PUT', '/manage/users', 'POST /manage/users'], ['DELETE', '/manage/users', 'POST /manage/users'],
  ['GET', '/manage/maintenance', 'POST /manage/maintenance'], ['PUT', '/manage/maintenance', 'POST /manage/maintenance'],
  ['OPTIONS', '/api/maintenance/log', 'GET /api/maintenance/log'], ['HEAD', '/api/maintenance/log', 'GET /api/maintenance/log'],
  ['HEAD', '/api/instances', 'GET /api/instances'], ['PATCH', '/api/maintenance', 'PUT /api/maintenance'],
  ['POST', '/api/maintenance', 'PUT /api/maintenance'], ['DELETE', '/api/maintenance', 'PUT /api/maintenance'],
  ['PATCH', '/api/docs/matrix-patched', 'PUT /api/docs/:slug'], ['POST', '/api/docs/matrix-posted', 'PUT /api/docs/:slug'],
  ['OPTIONS', '/docs', 'POST /docs'], ['PUT', '/docs', 'POST /docs'],
  // A HEAD answer on an event stream used to hold the connection for good (no headers until the end).
  ['HEAD', '/api/maintenance/events', 'GET /api/maintenance/events'],
]

/** Headers that some proxies and frameworks honour to rewrite a request; here they change nothing. */
const HEADER_TRICKS: Array<[method: string, target: string, route: string, headers: Record<string, string>]> = [
  ['GET', '/manage', 'GET /manage', { 'x-original-url': '/healthz' }],
  ['GET', '/manage', 'GET /manage', { 'x-rewrite-url': '/login' }],
  ['GET', '/login', 'GET /login', { 'x-original-url': '/manage' }],
  ['GET', '/', 'GET /', { 'x-rewrite-url': '/manage', 'x-forwarded-uri': '/manage' }],
  ['GET', '/manage', 'GET /manage', { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', 'x-forwarded-host': 'localhost' }],
  ['GET', '/manage', 'GET /manage', { 'x-forwarded-prefix': '/static/' }],
  ['GET', '/manage', 'GET /manage', { host: 'localhost' }],
  ['POST', '/manage/users', 'POST /manage/users', { 'x-http-method-override': 'GET' }],
  ['PUT', '/api/maintenance', 'PUT /api/maintenance', { 'x-http-method-override': 'GET' }],
  ['GET', '/manage', 'GET /manage', { authorization: 'Bearer matrix' }],
]

const counts = { routes: 0, cells: 0, requests: 0, tricks: 0, byVariant: {} as Record<string, number> }

describe.each(DATABASE_KINDS)('the authorization matrix on %s', (kind) => {
  let site: TestSite
  let origin: string
  const browsers = new Map<PrincipalKind, Browser>()
  let n = 0
  let windowSlot = 0
  let fixtures: Fixtures

  async function asEmergencyUser (method: 'PUT' | 'POST', url: string, payload: Record<string, unknown>): Promise<LightMyRequestResponse> {
    // The API by HTTP Basic; forms by the emergency user's browser session and its CSRF token
    // (Basic credentials alone carry no authority to a form).
    const emergency = browsers.get('emergency')
    const headers = url.startsWith('/api/') || emergency === undefined
      ? { authorization: basicOf('emergency') }
      : { cookie: emergency.cookie, 'x-csrf-token': emergency.csrf }
    const response = await site.app.inject({ method, url, headers, payload })
    if (response.statusCode >= 300) throw new Error(`fixture ${method} ${url}: ${response.statusCode} ${response.body}`)
    return response
  }

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site)
    for (const principal of PRINCIPALS) {
      browsers.set(principal, principal === 'anonymous' ? await anonymousBrowser(site.app) : await signedInBrowser(site.app, principal))
    }
    origin = await site.app.listen({ port: 0, host: '127.0.0.1' })
    await asEmergencyUser('PUT', '/api/docs/matrix-shared', { title: 'Matrix shared', body: 'Read and edited by every cell.' })
    const member = 'matrix-member'
    const passwordHash = await hashPassword('matrix-password')
    await insertUser(site.database.writer, { username: member, passwordHash, role: 'member' })
    const exported = (await asEmergencyUser('POST', '/api/tasks/export', {})).json<{ id: number }>().id
    await until('the fixture export to finish', async () => {
      const task = (await site.app.inject({ url: `/api/tasks/${exported}`, headers: { authorization: basicOf('emergency') } })).json<{ state: string }>()
      return task.state === 'done'
    }, 30_000)
    fixtures = {
      next: () => ++n,
      async document () {
        const slug = `matrix-doc-${++n}`
        await asEmergencyUser('PUT', `/api/docs/${slug}`, { title: `Matrix doc ${n}`, body: 'To be deleted.' })
        return slug
      },
      windowTimes () {
        const start = Date.UTC(2090, 0, 1) + (windowSlot++) * 4 * 3600_000
        return { startsAt: new Date(start).toISOString(), endsAt: new Date(start + 3600_000).toISOString() }
      },
      async window () {
        const response = await asEmergencyUser('POST', '/api/maintenance/windows', { mode: 'concurrent', reason: 'matrix fixture', ...this.windowTimes() })
        return response.json<{ id: number }>().id
      },
      version: async () => (await readState(site.app)).version,
      async user (state) {
        const username = `matrix-user-${++n}`
        await insertUser(site.database.writer, { username, passwordHash, role: 'member' })
        if (state === 'disabled') await site.database.writer.updateTable('app_user').set({ disabled_at: new Date().toISOString() }).where('username', '=', username).execute()
        return username
      },
      async reset (username) {
        const page = await asEmergencyUser('POST', `/manage/users/${username}/reset`, {})
        return /\/reset\/([\w-]+)/.exec(page.body)![1]!
      },
      shared: 'matrix-shared',
      member,
      resetToken: '',
      task: exported,
    }
    fixtures = { ...fixtures, resetToken: await fixtures.reset(await fixtures.user('enabled')) }
  })
  afterAll(async () => { await site?.close() })

  it('has an entry for every route the app registers, and a route for every entry', () => {
    const registered = recordedRouteKeys().sort()
    const entered = MATRIX.flatMap(entryKeys).sort()
    expect(registered.length).toBeGreaterThan(40)
    expect(registered.filter((key) => !entered.includes(key)), 'routes without an entry in MATRIX').toEqual([])
    expect(entered.filter((key) => !registered.includes(key)), 'entries without a route').toEqual([])
    counts.routes = registered.length
  })

  /** The browser a cell's request comes from; sign-in and sign-out cells get one of their own. */
  async function browserFor (entry: Entry, principal: PrincipalKind, variant: Variant): Promise<Browser> {
    if (entry.route === 'POST /logout' && variant === 'browser') {
      return principal === 'anonymous' ? anonymousBrowser(site.app) : signedInBrowser(site.app, principal)
    }
    if (entry.route === 'POST /login' && variant === 'browser') return anonymousBrowser(site.app)
    return browsers.get(principal)!
  }

  async function send (entry: Entry, principal: PrincipalKind, variant: Variant, request: CellRequest): Promise<Answer> {
    const method = variant === 'HEAD' ? 'HEAD' : entry.route.split(' ')[0]!
    const headers: Record<string, string> = { accept: entry.stream === true ? 'text/event-stream' : isJsonRoute(request.url) ? 'application/json' : BROWSER_ACCEPT }
    let form = request.form
    if (variant === 'HTTP Basic') {
      if (principal !== 'anonymous') headers.authorization = basicOf(principal)
    } else {
      const browser = await browserFor(entry, principal, variant)
      headers.cookie = browser.cookie
      if (variant === 'browser' && UNSAFE.has(method)) {
        if (form !== undefined) form = { ...form, _csrf: browser.csrf }
        else headers['x-csrf-token'] = browser.csrf
      }
    }
    if (entry.route === 'POST /login' && principal !== 'anonymous') {
      form = { ...form, username: ACCOUNTS[principal].username, password: ACCOUNTS[principal].password }
    }
    let payload: string | undefined
    if (form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      payload = new URLSearchParams(form).toString()
    } else if (request.json !== undefined && variant !== 'HEAD') {
      headers['content-type'] = 'application/json'
      payload = JSON.stringify(request.json)
    }
    counts.requests++
    if (entry.stream === true) {
      const raw: RawResponse = await rawRequest(origin, method, request.url, headers, payload)
      return { status: raw.status, headers: raw.headers, body: raw.body }
    }
    const response = await site.app.inject({ method: method as 'GET', url: request.url, headers, payload, remoteAddress: freshAddress() })
    return { status: response.statusCode, headers: response.headers, body: response.body }
  }

  describe.each(MODES)('in %s mode', (mode) => {
    beforeAll(async () => {
      if (mode !== 'normal') await switchTo(site.app, basicOf('maintainer'), mode, { reason: 'matrix' })
    })
    afterAll(async () => { await backToNormal(site.app, basicOf('maintainer')) })

    it.each(MATRIX.map((entry) => [entry.route, entry] as const))('%s', async (_route, entry) => {
      const method = entry.route.split(' ')[0]!
      const path = entry.route.split(' ')[1]!
      const variants: Variant[] = ['browser']
      if (UNSAFE.has(method)) variants.push('browser without CSRF token')
      if (path.startsWith('/api/') || path === '/healthz') variants.push('HTTP Basic')
      if (method === 'GET' && entry.stream !== true) variants.push('HEAD')
      const problems: string[] = []
      for (const variant of variants) {
        for (const [column, principal] of PRINCIPALS.entries()) {
          const cell = entry[mode][column]!
          const expected = expectedFor(entry, principal, cell, variant)
          const request = await entry.request(fixtures)
          // Safe methods write nothing by Fastify's and our design; only unsafe ones are weighed.
          const weighed = UNSAFE.has(method)
          const before = weighed ? await dataSnapshot(site.database) : undefined
          const answer = await send(entry, principal, variant, request)
          const after = weighed ? await dataSnapshot(site.database) : undefined
          counts.cells++
          counts.byVariant[variant] = (counts.byVariant[variant] ?? 0) + 1
          const where = `${variant} ${principal}: ${method} ${request.url}`
          const wanted = parseCell(expected)
          if (answer.status !== wanted.status || (wanted.code !== undefined && variant !== 'HEAD' && codeOf(answer) !== wanted.code)) {
            problems.push(`${where}: expected ${expected}, got ${describeAnswer(answer)} ${answer.body.slice(0, 300)}`)
          }
          if (answer.headers['quiesce-mode'] !== mode) problems.push(`${where}: Quiesce-Mode ${String(answer.headers['quiesce-mode'])}`)
          if (answer.status === 503 && answer.headers['retry-after'] === undefined) problems.push(`${where}: a 503 without Retry-After`)
          if (before === undefined || after === undefined) continue
          const changes = snapshotChanges(before, after)
          const audit = answer.status >= 400 ? auditRowsFor(entry, expected) : 0
          const expectedChanges = audit > 0 ? [`audit+${audit}`] : []
          const wrote = entry.writes === 'data' && answer.status < 400 && variant !== 'HEAD'
          if (wrote && changes.length === 0) problems.push(`${where}: answered ${answer.status} but wrote nothing`)
          if (!wrote && JSON.stringify(changes) !== JSON.stringify(expectedChanges)) {
            problems.push(`${where}: answered ${answer.status}; expected changes ${JSON.stringify(expectedChanges)}, found ${JSON.stringify(changes)}`)
          }
        }
      }
      // The browsers of the matrix are still signed in (a refused sign-out did not sign them out).
      for (const principal of PRINCIPALS.slice(1)) {
        const page = await site.app.inject({ url: '/login', headers: { cookie: browsers.get(principal)!.cookie } })
        if (!page.body.includes(`<strong data-testid="signed-in-user">${ACCOUNTS[principal as Exclude<PrincipalKind, 'anonymous'>].username}</strong>`)) {
          problems.push(`${principal}'s browser is no longer signed in`)
        }
      }
      expect(problems).toEqual([])
    })

    // Credentials are judged before the gate, so one mode shows it; exclusive is where it matters.
    if (mode === 'exclusive') {
      it('wrong Basic credentials are refused (401) on every route, before anything else', async () => {
        const problems: string[] = []
        for (const entry of MATRIX) {
          const method = entry.route.split(' ')[0]!
          const request = await entry.request(fixtures)
          const before = UNSAFE.has(method) ? await dataSnapshot(site.database) : undefined
          const headers: Record<string, string> = {
            authorization: `Basic ${Buffer.from(`nobody-${fixtures.next()}:wrong-password`).toString('base64')}`,
            accept: isJsonRoute(request.url) ? 'application/json' : BROWSER_ACCEPT,
          }
          const payload = request.form !== undefined ? new URLSearchParams(request.form).toString() : request.json !== undefined ? JSON.stringify(request.json) : undefined
          if (payload !== undefined) headers['content-type'] = request.form !== undefined ? 'application/x-www-form-urlencoded' : 'application/json'
          const response = await site.app.inject({ method: method as 'GET', url: request.url, headers, payload, remoteAddress: freshAddress() })
          counts.requests++
          counts.cells++
          counts.byVariant['wrong Basic credentials'] = (counts.byVariant['wrong Basic credentials'] ?? 0) + 1
          const answer = { status: response.statusCode, headers: response.headers, body: response.body }
          if (describeAnswer(answer) !== SIGN_IN) problems.push(`${method} ${request.url}: expected ${SIGN_IN}, got ${describeAnswer(answer)}`)
          const changes = before === undefined ? [] : snapshotChanges(before, await dataSnapshot(site.database))
          if (changes.length > 0) problems.push(`${method} ${request.url}: wrote ${JSON.stringify(changes)}`)
        }
        expect(problems).toEqual([])
      })
    }

    // The role checks in normal mode, the gate in exclusive mode (concurrent mode gates nothing before the handler).
    if (mode !== 'concurrent') {
      it('method, path and header tricks get no further than the route they aim at, and never a 5xx but the gate\'s', async () => {
        const byRoute = new Map(MATRIX.map((entry) => [entry.route, entry]))
        const tricks: Trick[] = []
        for (const { route, targets } of PATH_TRICKS) {
          for (const target of targets(fixtures)) tricks.push({ method: route.split(' ')[0]!, target, route })
        }
        for (const [method, target, route] of METHOD_TRICKS) tricks.push({ method, target, route })
        for (const [method, target, route, headers] of HEADER_TRICKS) tricks.push({ method, target, route, headers })

        const problems: string[] = []
        // Whatever a trick aims at, nobody sees the control panel who may not.
        const panelAllowed = byRoute.get('GET /manage')![mode].map((cell) => parseCell(cell).status < 400)
        for (const trick of tricks) {
          const entry = byRoute.get(trick.route)!
          const body = UNSAFE.has(trick.method) ? await entry.request(fixtures) : undefined
          for (const [column, principal] of PRINCIPALS.entries()) {
            const allowed = parseCell(entry[mode][column]!).status < 400
            const browser = browsers.get(principal)!
            const headers: Record<string, string> = { accept: isJsonRoute(trick.target) ? 'application/json' : BROWSER_ACCEPT, cookie: browser.cookie, ...trick.headers }
            let payload: string | undefined
            if (body?.json !== undefined) {
              headers['content-type'] = 'application/json'
              headers['x-csrf-token'] = browser.csrf
              payload = JSON.stringify(body.json)
            } else if (UNSAFE.has(trick.method)) {
              headers['content-type'] = 'application/x-www-form-urlencoded'
              payload = new URLSearchParams({ ...body?.form, _csrf: browser.csrf }).toString()
            }
            const before = UNSAFE.has(trick.method) ? await dataSnapshot(site.database) : undefined
            const answer = await rawRequest(origin, trick.method, trick.target, headers, payload)
            const changes = before === undefined ? [] : snapshotChanges(before, await dataSnapshot(site.database))
            counts.tricks++
            counts.requests++
            const where = `${principal}: ${trick.method} ${trick.target}${trick.headers === undefined ? '' : ` ${JSON.stringify(trick.headers)}`} (aims at ${trick.route}, ${entry[mode][column]})`
            const code = codeOf(answer)
            // A HEAD answer has no body to name its code: the gate's 503 is known by the mode.
            const gate = answer.status === 503 && (code !== undefined ? GATE_CODES.includes(code) : trick.method === 'HEAD' && mode !== 'normal')
            if (answer.status >= 500 && !gate) {
              problems.push(`${where}: ${describeAnswer(answer)} ${answer.body.slice(0, 200)}`)
            }
            if (!allowed && answer.status < 400) problems.push(`${where}: got in, ${answer.status}`)
            if (!panelAllowed[column]! && answer.body.includes('<h1>Control panel</h1>')) problems.push(`${where}: showed the control panel`)
            const audited = changes.length === 1 && changes[0] === 'audit+1' && trick.route === 'PUT /api/maintenance'
            if (!(allowed && answer.status < 400) && changes.length > 0 && !audited) problems.push(`${where}: answered ${answer.status} and wrote ${JSON.stringify(changes)}`)
          }
        }
        expect(problems).toEqual([])
      })
    }
  })
})

afterAll(() => {
  console.log(`authorization matrix: ${counts.routes} routes × ${PRINCIPALS.length} principals × ${MODES.length} modes × ${DATABASE_KINDS.length} databases; ` +
    `${counts.cells} cells checked (${Object.entries(counts.byVariant).map(([variant, n]) => `${n} ${variant}`).join(', ')}), ` +
    `${counts.tricks} trick requests, ${counts.requests} requests in all`)
})
