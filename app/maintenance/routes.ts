import { fastifySSE } from '@fastify/sse'
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import { InvalidInputError, InvalidStateChangeError, NotManagerError, UnauthorizedError } from './errors.js'
import { MAX_VERSION, mayManage, normalizeUntil, type Channel, type ChangeRequestInput, type MaintenancePrincipal } from './state.js'

interface MaintenanceRoutesOptions {
  principalOf: (request: FastifyRequest) => MaintenancePrincipal | null
  /** Long-lived event streams do not count as requests in flight. */
  untrack: (request: FastifyRequest) => void
}

// Said the same to everyone: built once, not for each request.
const SIGN_IN_FIRST = new UnauthorizedError()

function manager (request: FastifyRequest, principalOf: MaintenanceRoutesOptions['principalOf'], what: string): MaintenancePrincipal {
  const principal = principalOf(request)
  if (principal === null) throw SIGN_IN_FIRST
  if (!mayManage(principal)) throw new NotManagerError(what)
  return principal
}

const changeBody = {
  type: 'object',
  required: ['mode', 'expectedVersion'],
  additionalProperties: false,
  properties: {
    mode: { type: 'string', enum: ['normal', 'concurrent', 'exclusive'] },
    reason: { type: ['string', 'null'], maxLength: 500 },
    until: { type: ['string', 'null'], maxLength: 64 },
    expectedVersion: { type: 'integer', minimum: 1, maximum: MAX_VERSION },
  },
} as const

const windowBody = {
  type: 'object',
  required: ['mode', 'startsAt', 'endsAt'],
  additionalProperties: false,
  properties: {
    mode: { type: 'string', enum: ['concurrent', 'exclusive'] },
    reason: { type: ['string', 'null'], maxLength: 500 },
    startsAt: { type: 'string', maxLength: 64 },
    endsAt: { type: 'string', maxLength: 64 },
  },
} as const

const logQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
    before: { type: 'integer', minimum: 1, maximum: MAX_VERSION },
    actor: { type: 'string', minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' },
    outcome: { type: 'string', enum: ['applied', 'refused'] },
    channel: { type: 'string', enum: ['web', 'api', 'cli', 'scheduler'] },
    from: { type: 'string', format: 'date-time' },
    to: { type: 'string', format: 'date-time' },
  },
} as const

interface LogQuery { limit: number, before?: number, actor?: string, outcome?: 'applied' | 'refused', channel?: Channel, from?: string, to?: string }

/** The JSON API of PRODUCT §4.4 for the state, its audit log, its change events, the instances and health. */
const maintenanceRoutes: FastifyPluginAsync<MaintenanceRoutesOptions> = async function maintenanceRoutes (fastify, options) {
  if (!fastify.hasReplyDecorator('sse')) await fastify.register(fastifySSE, { heartbeatInterval: 15_000 })
  stateRoutes(fastify, options)
  logRoutes(fastify, options)
  windowRoutes(fastify, options)
  instanceRoutes(fastify, options)
  eventRoutes(fastify, options)
}

/** Health, and the state: read from this instance's copy, changed through the rules. */
function stateRoutes (fastify: FastifyInstance, { principalOf }: MaintenanceRoutesOptions): void {
  const maintenance = fastify.maintenance

  fastify.get('/healthz', { config: { maintenance: 'always-open' } }, async function healthz (_request, reply) {
    const healthy = maintenance.healthy
    if (!healthy) reply.code(503)
    return { status: !healthy ? 'unavailable' : maintenance.standby ? 'replica' : 'ok', mode: maintenance.state.mode, version: maintenance.state.version, instance: maintenance.instanceId }
  })

  // Served from this instance's copy, so it answers while the database is unavailable, and then
  // says that it is the last state known here, and since when.
  fastify.get('/api/maintenance', { config: { maintenance: 'always-open' } }, async function readState (request) {
    const state = maintenance.publicState(principalOf(request))
    return maintenance.healthy ? state : { ...state, stale: true, confirmedAt: maintenance.confirmedAt }
  })

  // Open in every mode so that every attempt meets the rules and the audit log: in exclusive
  // mode another manager learns who the maintainer is (403) instead of a bare 503.
  // A malformed body is refused like any other bad change, and logged like every attempt.
  fastify.put<{ Body: ChangeRequestInput | null }>('/api/maintenance', {
    schema: { body: changeBody },
    attachValidation: true,
    config: { maintenance: 'always-open' },
  }, async function changeState (request) {
    const principal = principalOf(request)
    if (principal === null) throw SIGN_IN_FIRST
    // A member's attempt goes to the rules too, which refuse it and write it to the audit log.
    const body = typeof request.body === 'object' && request.body !== null ? request.body : {}
    const invalid = request.validationError
    try {
      await maintenance.change(principal, body, 'api', invalid?.message)
    } catch (err) {
      // Logged as refused; answered with what the schema found, field by field.
      throw invalid !== undefined && err instanceof InvalidStateChangeError ? invalid : err
    }
    return maintenance.publicState(principal)
  })
}

function logRoutes (fastify: FastifyInstance, { principalOf }: MaintenanceRoutesOptions): void {
  fastify.get<{ Querystring: LogQuery }>('/api/maintenance/log', {
    schema: { querystring: logQuery },
  }, async function readLog (request) {
    manager(request, principalOf, 'read the maintenance log')
    const { limit, before, actor, outcome, channel, from, to } = request.query
    // Ajv turns `1e309` into Infinity and then skips minimum and maximum for it.
    if (!Number.isFinite(limit) || (before !== undefined && !Number.isFinite(before))) throw new InvalidInputError('limit and before must be whole numbers')
    const filter = { actor, outcome, channel, from: normalizeUntil(from) ?? undefined, to: normalizeUntil(to) ?? undefined }
    return { entries: await fastify.maintenance.log(limit, before, filter) }
  })
}

function windowRoutes (fastify: FastifyInstance, { principalOf }: MaintenanceRoutesOptions): void {
  const maintenance = fastify.maintenance

  fastify.get('/api/maintenance/windows', { config: { maintenance: 'always-open' } }, async function listWindows (request) {
    const managing = mayManage(principalOf(request))
    const windows = (await maintenance.windows()).filter((window) => managing || window.state === 'scheduled' || window.state === 'active')
    return { windows: windows.map((window) => managing ? window : { ...window, createdBy: null, note: null }) }
  })

  fastify.post<{ Body: { mode: string, reason?: string | null, startsAt: string, endsAt: string } }>('/api/maintenance/windows', {
    schema: { body: windowBody },
  }, async function scheduleWindow (request, reply) {
    const principal = manager(request, principalOf, 'schedule maintenance')
    reply.code(201)
    return maintenance.scheduleWindow(principal, request.body)
  })

  fastify.delete<{ Params: { id: number } }>('/api/maintenance/windows/:id', {
    schema: { params: { type: 'object', properties: { id: { type: 'integer', minimum: 1, maximum: MAX_VERSION } } } },
  }, async function cancelWindow (request, reply) {
    await maintenance.cancelWindow(manager(request, principalOf, 'cancel scheduled maintenance'), request.params.id)
    reply.code(204)
    return ''
  })
}

function instanceRoutes (fastify: FastifyInstance, { principalOf, untrack }: MaintenanceRoutesOptions): void {
  fastify.get('/api/instances', async function listInstances (request) {
    manager(request, principalOf, 'see the instances')
    // This instance's row is counted live: the request asking for it is not one to report.
    untrack(request)
    return { version: fastify.maintenance.state.version, instances: await fastify.maintenance.instances() }
  })
}

/**
 * The state's change events. Open in every mode, so that a maintenance page can tell its reader
 * when the site is back. No HEAD route: Node sends no headers for a HEAD answer until it ends,
 * and a stream never ends.
 */
function eventRoutes (fastify: FastifyInstance, { principalOf, untrack }: MaintenanceRoutesOptions): void {
  const maintenance = fastify.maintenance
  const streams = new Set<() => void>()
  fastify.get('/api/maintenance/events', { sse: 'only', exposeHeadRoute: false, config: { maintenance: 'always-open' } }, async function streamState (request, reply) {
    untrack(request)
    const viewer = principalOf(request)
    const sse = reply.sse
    sse.keepAlive()
    const send = () => {
      const state = maintenance.state
      sse.send({ id: String(state.version), event: 'state', data: maintenance.publicState(viewer) }).catch(() => {})
    }
    const unsubscribe = maintenance.subscribe(send)
    const close = () => sse.close()
    streams.add(close)
    sse.onClose(() => {
      unsubscribe()
      streams.delete(close)
    })
    send()
  })

  fastify.addHook('preClose', async function closeStreams () {
    for (const close of streams) close()
  })
}

export default maintenanceRoutes
