import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { signedIn } from '../auth/plugin.js'
import { MAX_INTEGER } from '../db/schema.js'
import { ExclusiveError, InternalError, NotMaintainerError, StateConflictError } from '../errors.js'
import { describeError, wantsJson } from '../web/errors.js'
import { textFields } from '../web/forms.js'
import { bypasses, MODE_LABELS, type InstanceView, type LogEntry, type MaintenanceState, type MaintenanceWindow, type Mode, type PublicState } from '../maintenance/index.js'
import { exclusiveImpact, RECENT_MINUTES, type ExclusiveImpact } from './impact.js'
import logRoutes from './log.js'
import signInsRoutes from './sign-ins.js'
import usersRoutes from './users.js'

declare module '../web/view.js' {
  interface Pages {
    manage: ManagePage
    maintenance: { state: PublicState, retryAfter: number }
    'manage-confirm': { state: MaintenanceState, impact: ExclusiveImpact, form: { mode: string, reason: string, until: string, expectedVersion: string }, recentMinutes: number }
    'maintenance-status': Record<never, never>
  }
}

interface ManagePage {
  state: MaintenanceState
  instances: InstanceView[]
  /** Every live instance enforces the current version and no write is in flight. */
  quiet: boolean
  recent: LogEntry[]
  changed: boolean
  scheduled: boolean
  /** Why the last change was refused, in words; with what the manager had submitted. */
  problem: string | null
  form: { mode: Mode, reason: string, until: string, expectedVersion: number }
  /** Whether the person looking may change the state now (a manager while normal; then the maintainer or the emergency user). */
  canChange: boolean
  /** When the page was made (the instances were read then): ISO-8601. */
  now: string
  windows: MaintenanceWindow[]
  windowForm: { mode: string, reason: string, startsAt: string, endsAt: string }
}

interface WindowForm { mode?: string, reason?: string, startsAt?: string, endsAt?: string }

interface ChangeForm { mode?: string, reason?: string, until?: string, expectedVersion?: string, confirmed?: string }

/**
 * `datetime-local` inputs carry no zone: the control panel shows and takes times in UTC, and
 * says so. A value with a zone is taken as it is.
 */
function untilFromForm (value: string | undefined): string | null {
  const trimmed = (value ?? '').trim()
  if (trimmed === '') return null
  return /(Z|[+-]\d{2}:\d{2})$/.test(trimmed) ? trimmed : `${trimmed.length === 16 ? `${trimmed}:00` : trimmed}Z`
}

/**
 * The text fields of a refused form, to show again: the body of a request refused before or by
 * its schema (CSRF, a field that is an object) may hold anything, and the page reads strings.
 */
function submittedText (body: unknown): ChangeForm & WindowForm {
  if (typeof body !== 'object' || body === null) return {}
  return Object.fromEntries(Object.entries(body).filter(([, value]) => typeof value === 'string'))
}

function untilForForm (until: string | null): string {
  return until === null ? '' : until.slice(0, 16)
}

/** The control panel: the state and its three-position control, the instances, the audit log. */
const manageRoutes: FastifyPluginAsync = async function manageRoutes (fastify) {
  async function managePage (request: FastifyRequest, overrides: Partial<ManagePage> = {}): Promise<ManagePage & { title: string }> {
    const maintenance = fastify.maintenance
    const [state, instances, recent, windows] = await Promise.all([
      maintenance.refresh(),
      maintenance.instances(request),
      maintenance.log(8),
      maintenance.windows(),
    ])
    const live = instances.filter((instance) => !instance.stale)
    return {
      title: 'Manage',
      state,
      instances,
      quiet: live.every((instance) => instance.applied && instance.writesInFlight === 0),
      recent,
      changed: false,
      scheduled: false,
      problem: null,
      form: { mode: state.mode, reason: state.reason ?? '', until: untilForForm(state.until), expectedVersion: state.version },
      canChange: mayChange(state, request),
      now: new Date().toISOString(),
      windows,
      windowForm: { mode: 'concurrent', reason: '', startsAt: '', endsAt: '' },
      ...overrides,
    }
  }

  // A change of mode is judged by the maintenance rules, for anyone signed in: a member's
  // attempt is refused (403) and, like every attempt, written to the audit log.
  fastify.post<{ Body: ChangeForm }>('/manage/maintenance', {
    schema: { body: textFields('mode', 'reason', 'until', 'expectedVersion', 'confirmed') },
    preHandler: fastify.requireSignedIn,
    errorHandler: refusedChange,
  }, async function changeMode (request, reply) {
    const body = request.body ?? {}
    // Closing the site locks people out: the manager sees who and what first, and confirms.
    // A change the rules would refuse anyway (a stale version, not the maintainer) is refused at once.
    const state = await fastify.maintenance.refresh()
    if (body.mode === 'exclusive' && state.mode !== 'exclusive' && body.confirmed !== '1' &&
      Number(body.expectedVersion) === state.version && mayChange(state, request)) {
      // This step writes nothing: it is not one of the writes in flight it reports.
      fastify.maintenance.untrack(request)
      const form = { mode: 'exclusive', reason: body.reason ?? '', until: body.until ?? '', expectedVersion: String(body.expectedVersion ?? '') }
      return reply.render('manage-confirm', { title: 'Close the site?', state, impact: await exclusiveImpact(fastify, signedIn(request)), form, recentMinutes: RECENT_MINUTES })
    }
    await fastify.maintenance.change(signedIn(request), {
      mode: body.mode ?? '',
      reason: body.reason ?? null,
      until: untilFromForm(body.until),
      expectedVersion: Number(body.expectedVersion),
    }, 'web')
    return reply.seeOther('/manage?changed=1')
  })

  /** A refused change is explained in words, on the control panel, with what was submitted. */
  async function refusedChange (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const shown = describeError(error)
    // Errors raised before requireManager ran (the exclusive gate, CSRF) must not show the panel
    // to whoever sent the request: only managers who got past the gate see it, others the error page.
    if (shown.error instanceof InternalError || shown.error instanceof ExclusiveError || request.principal?.canManage !== true || wantsJson(request)) throw error
    reply.code(shown.statusCode)
    const page = await managePage(request)
    const aboutWindows = request.url.startsWith('/manage/windows')
    const body = submittedText(request.body)
    return reply.render('manage', {
      ...page,
      problem: aboutWindows
        ? `${request.url.endsWith('/cancel') ? 'Not cancelled' : 'Not scheduled'}: ${shown.message}`
        : explainRefusal(shown.error, page.state),
      form: aboutWindows
        ? page.form
        : { mode: (body.mode as Mode | undefined) ?? page.state.mode, reason: body.reason ?? '', until: body.until ?? '', expectedVersion: page.state.version },
      windowForm: aboutWindows
        ? { mode: body.mode ?? 'concurrent', reason: body.reason ?? '', startsAt: body.startsAt ?? '', endsAt: body.endsAt ?? '' }
        : page.windowForm,
    })
  }

  await fastify.register(async function managersOnly (panel) {
    panel.addHook('preHandler', fastify.requireManager)
    await panel.register(managerPages)
  })

  async function managerPages (fastify: FastifyInstance) {
    fastify.get<{ Querystring: { changed?: string, scheduled?: string } }>('/manage', async function controlPanel (request, reply) {
      return reply.render('manage', await managePage(request, { changed: request.query.changed === '1', scheduled: request.query.scheduled === '1' }))
    })

    fastify.post<{ Body: WindowForm }>('/manage/windows', {
      schema: { body: textFields('mode', 'reason', 'startsAt', 'endsAt') },
      errorHandler: refusedChange,
    }, async function scheduleWindow (request, reply) {
      const body = request.body ?? {}
      await fastify.maintenance.scheduleWindow(signedIn(request), {
        mode: body.mode ?? '',
        reason: body.reason ?? null,
        startsAt: untilFromForm(body.startsAt) ?? '',
        endsAt: untilFromForm(body.endsAt) ?? '',
      })
      return reply.seeOther('/manage?scheduled=1#windows')
    })

    fastify.post<{ Params: { id: string } }>('/manage/windows/:id/cancel', {
      errorHandler: refusedChange,
    }, async function cancelWindow (request, reply) {
      await fastify.maintenance.cancelWindow(signedIn(request), Number(request.params.id))
      return reply.seeOther('/manage#windows')
    })

    await fastify.register(logRoutes)
    await fastify.register(usersRoutes)
    await fastify.register(signInsRoutes)
  }
}

/** A manager while the site is normal; then only the maintainer or the emergency user (PRODUCT §2.1). */
function mayChange (state: MaintenanceState, request: FastifyRequest): boolean {
  const principal = request.principal
  if (principal === null || !principal.canManage) return false
  return state.mode === 'normal' || bypasses(state, principal)
}

function explainRefusal (error: Error, state: MaintenanceState): string {
  if (error instanceof NotMaintainerError) {
    return `Not changed: ${state.maintainer} switched the site to ${MODE_LABELS[state.mode]} and is its maintainer now, so only ${state.maintainer} or the emergency user may change it.`
  }
  if (error instanceof StateConflictError) {
    return `Not changed: someone else changed the maintenance state while you were looking at it (it is now at version ${state.version}, ${MODE_LABELS[state.mode]}). Check the state below and apply your change again if it still makes sense.`
  }
  return `Not changed: ${error.message}`
}

/** Always open: the page people are sent to while the site is closed, and the banner's live updates. */
export const maintenancePageRoute: FastifyPluginAsync = async function maintenancePageRoute (fastify) {
  fastify.get('/maintenance', { config: { maintenance: 'always-open' } }, async function maintenancePage (request, reply) {
    const state = fastify.maintenance.publicState(request.principal)
    return reply.render('maintenance', { title: state.mode === 'exclusive' ? 'Closed for maintenance' : 'Maintenance', state, retryAfter: fastify.maintenance.retryAfter(), stateInPage: state.mode !== 'normal' })
  })

  // An open page asks for its banner again when the state changes (public/quiesce.js), so the
  // banner's words, which depend on the reader, are written in one place: views/banner.eta. The
  // event may come from an instance ahead of this one: then this one reads the state first.
  fastify.get<{ Querystring: { version?: number } }>('/maintenance/banner', {
    config: { maintenance: 'always-open' },
    schema: { querystring: { type: 'object', properties: { version: { type: 'integer', minimum: 0, maximum: MAX_INTEGER } } } },
  }, async function maintenanceBanner (request, reply) {
    const seen = request.query.version
    if (seen !== undefined && seen > fastify.maintenance.state.version) await fastify.maintenance.refresh()
    reply.header('cache-control', 'no-store')
    return reply.render('maintenance-status', { title: 'Maintenance status' })
  })
}

export default manageRoutes
