import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import type { Expression } from 'kysely'
import type { ChangeSignal } from './change-signals.js'
import { ExclusiveError, InvalidStateChangeError, NotMaintainerError, NotManagerError, ReadOnlyError, StateConflictError, StateUnavailableError } from './errors.js'
import maintenanceRoutes from './routes.js'
import {
  bypasses, CONTROL_CHARACTERS_PROBLEM, MAX_VERSION, decideChange, hasControlCharacters, isIsoTimestamp, MAX_REASON_LENGTH, mayWrite, normalizeUntil, publicState, readChangeRequest, retryAfterSeconds,
  type Channel, type ChangeRequest, type ChangeRequestInput, type MaintenancePrincipal, type MaintenanceState, type PublicState,
} from './state.js'
import type { InstanceRecord, LogEntry, LogFilter, MaintenanceStore, MaintenanceWindow } from './store.js'

export { MAINTENANCE_ERRORS } from './errors.js'
export { maintenanceMigration, maintenanceMigrations, maintenanceWindowsMigration } from './migration.js'
export { postgresNotifications, pollingSignal, type ChangeSignal } from './change-signals.js'
export { kyselyMaintenanceStore, type MaintenanceStore, type MaintenanceTables, type LogEntry, type LogFilter, type InstanceRecord, type MaintenanceWindow, type WindowState } from './store.js'
export * from './state.js'

/**
 * The two seams of a unit of work that the plugin hooks into (structurally typed, so any
 * implementation fits): a hook inside the commit transaction before the writes, and a hook
 * before each retry. `principal` is whatever the application's unit of work carries.
 */
export interface CommitSeams {
  onBeforeWrites (hook: (context: { transaction: unknown, unitOfWork: { principal: unknown } }) => Promise<void>): void
  onBeforeRetry (hook: (context: { attempt: number, principal: unknown }) => Promise<void>): void
  /** Optional: a hook before a commit's transaction opens, to refuse cheaply what the guard would refuse. */
  onBeforeCommit? (hook: (context: { unitOfWork: { principal: unknown } }) => Promise<void>): void
  /**
   * Optional: the unit of work records with each commit what `stamp(transaction)` evaluates to
   * (the store's {@link MaintenanceStore.versionStamp}): the state version it was applied under.
   */
  stampCommits? (stamp: (transaction: unknown) => Expression<number>): void
}

export interface MaintenancePluginOptions {
  store: MaintenanceStore
  unitOfWork: CommitSeams
  /** Who makes a request, as the rules see them (null for visitors). Called by the gate. */
  principalOf: (request: FastifyRequest) => MaintenancePrincipal | null
  /** The same for the principal a unit of work carries. */
  identify: (principal: unknown) => MaintenancePrincipal | null
  /** Keeps this instance's copy of the state fresh; without one, only commits and retries re-read it. */
  changeSignal?: ChangeSignal
  instanceId: string
  /** `Retry-After` seconds when no expected end is set. */
  retryAfterSeconds?: number
  /** Path prefixes that stay open in exclusive mode besides routes marked `always-open` (static files). */
  alwaysOpenPrefixes?: string[]
  heartbeatMs?: number
  /** How often scheduled windows are checked for a due switch (default 1000 ms; 0: never). */
  scheduleMs?: number
  /** Register the JSON API, the events stream and /healthz (default true). */
  routes?: boolean
}

/** What `fastify.maintenance` offers to the application. */
export interface MaintenanceController {
  /** This instance's copy of the shared state (the gate's view; commits re-read the database). */
  readonly state: MaintenanceState
  readonly instanceId: string
  /**
   * False while this instance cannot use its database: its last heartbeat failed, none succeeded
   * for three intervals, or the state could not be confirmed for 30 s.
   */
  readonly healthy: boolean
  /** When this instance last read the state from the database (ISO-8601). */
  readonly confirmedAt: string
  mayWrite (principal: MaintenancePrincipal | null): boolean
  bypasses (principal: MaintenancePrincipal | null): boolean
  publicState (viewer: MaintenancePrincipal | null): PublicState
  retryAfter (): number
  /** Reads the state from the database (not the cache) and applies it here. */
  refresh (): Promise<MaintenanceState>
  /**
   * Changes the state with the rules of §2.1; every attempt lands in the audit log, malformed
   * ones too (`inputProblem`: what a schema found wrong with it, refused as invalid).
   */
  change (principal: MaintenancePrincipal, change: ChangeRequestInput, channel: Channel, inputProblem?: string): Promise<MaintenanceState>
  log (limit: number, beforeId?: number, filter?: LogFilter): Promise<LogEntry[]>
  countLog (filter?: LogFilter): Promise<number>
  logActors (): Promise<string[]>
  /** The registered instances; `asking`, the request that asks, is not counted among this instance's requests in flight. */
  instances (asking?: FastifyRequest): Promise<InstanceView[]>
  /** Called with the new state whenever this instance applies a change. */
  subscribe (listener: (state: MaintenanceState) => void): () => void
  /** Counts work outside HTTP requests (a task's batch) as a write in flight until `done()`. */
  trackWrite (): () => void
  /** Stops counting a long-lived request (an event stream) as a request in flight. */
  untrack (request: FastifyRequest): void
  /** The next scheduled window starting within a day, for the announcement on every page. */
  readonly upcoming: MaintenanceWindow | null
  /** Scheduled, active and recent windows, soonest first. */
  windows (): Promise<MaintenanceWindow[]>
  scheduleWindow (principal: MaintenancePrincipal, window: WindowInput): Promise<MaintenanceWindow>
  cancelWindow (principal: MaintenancePrincipal, id: number): Promise<void>
  /** Performs the switches that are due at `now` (the scheduler calls it every `scheduleMs`). */
  runSchedule (now?: Date): Promise<void>
}

export interface WindowInput {
  mode: string
  reason?: string | null
  startsAt: string
  endsAt: string
}

/** Who performs scheduled switches; it is the maintainer of the windows it opens. */
export const SCHEDULER: MaintenancePrincipal = { name: 'scheduler', canManage: true, isEmergency: false }
const ANNOUNCE_AHEAD_MS = 24 * 60 * 60 * 1000

export interface InstanceView extends InstanceRecord {
  /** No heartbeat for a while: the instance may be gone. */
  stale: boolean
  /** It enforces the current state version. */
  applied: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    maintenance: MaintenanceController
  }
  interface FastifyContextConfig {
    /** `'always-open'`: served in every mode, to everyone (sign-in, health, the state itself). */
    maintenance?: 'always-open'
  }
}

const kTracked = Symbol('quiesce.maintenance.tracked')
interface TrackedRequest { [kTracked]?: 'request' | 'write' }
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const STALE_AFTER_HEARTBEATS = 3
const DROP_AFTER_MS = 60_000
const CONFIRM_WITHIN_MS = 30_000

/**
 * Maintenance mode for a Fastify site: Normal, Concurrent (read-only) and Exclusive, shared by
 * every instance through the database, enforced by an `onRequest` gate that never queries the
 * database and by a guard inside every commit transaction that always does.
 */
const maintenancePlugin: FastifyPluginAsync<MaintenancePluginOptions> = async function maintenancePlugin (fastify, options) {
  const { store, principalOf, identify, instanceId } = options
  const defaultRetryAfter = options.retryAfterSeconds ?? 300
  const alwaysOpenPrefixes = options.alwaysOpenPrefixes ?? []
  const heartbeatMs = options.heartbeatMs ?? 2000
  const scheduleMs = options.scheduleMs ?? 1000
  const listeners = new Set<(state: MaintenanceState) => void>()
  const startedAt = new Date().toISOString()
  let requestsInFlight = 0
  let writesInFlight = 0
  let confirmedAt = 0

  // Loaded before the instance accepts requests: if the database cannot be read, start fails.
  let state = await store.read()
  confirmedAt = Date.now()
  // Heartbeats (writes, every heartbeatMs) tell whether the database can be used now.
  let heartbeatOkAt = confirmedAt
  let heartbeatFailing = false

  function apply (next: MaintenanceState): void {
    confirmedAt = Date.now()
    if (next.version <= state.version) return
    state = next
    for (const listener of listeners) listener(state)
    requestHeartbeat()
  }

  async function refresh (): Promise<MaintenanceState> {
    apply(await store.read())
    return state
  }

  function retryAfter (): number {
    return retryAfterSeconds(state, defaultRetryAfter)
  }

  function refusal (current: MaintenanceState): Error {
    const reason = current.reason === null ? '' : `: ${current.reason}`
    return current.mode === 'exclusive' ? new ExclusiveError(reason) : new ReadOnlyError(reason)
  }

  const controller: MaintenanceController = {
    get state () { return state },
    instanceId,
    get healthy () {
      const now = Date.now()
      return !heartbeatFailing && now - heartbeatOkAt < heartbeatMs * STALE_AFTER_HEARTBEATS && now - confirmedAt < CONFIRM_WITHIN_MS
    },
    get confirmedAt () { return new Date(confirmedAt).toISOString() },
    mayWrite: (principal) => mayWrite(state, principal),
    bypasses: (principal) => bypasses(state, principal),
    publicState: (viewer) => publicState(state, viewer),
    retryAfter,
    refresh,
    async change (principal, input, channel, inputProblem) {
      const { previous, state: next } = await changeMaintenanceState(store, principal, input, channel, instanceId, inputProblem)
      apply(previous)
      apply(next)
      fastify.log.info({ actor: principal.name, channel, from: previous.mode, to: next.mode, version: next.version }, 'maintenance state changed')
      return next
    },
    log: (limit, beforeId, filter) => store.log(limit, beforeId, filter),
    countLog: (filter) => store.countLog(filter),
    logActors: () => store.logActors(),
    async instances (asking) {
      const now = Date.now()
      // This instance's own row as it is now, not as of its last heartbeat (up to a beat old):
      // right after a switch the control panel should not call its own instance behind. The
      // request that asks is not one of the requests it reports.
      const self = asking === undefined ? undefined : (asking as TrackedRequest)[kTracked]
      return (await store.instances()).map((stored) => {
        const record = stored.id === instanceId && !closing
          ? {
              ...stored,
              heartbeatAt: new Date(now).toISOString(),
              stateVersion: state.version,
              requestsInFlight: requestsInFlight - (self === undefined ? 0 : 1),
              writesInFlight: writesInFlight - (self === 'write' ? 1 : 0),
            }
          : stored
        return {
          ...record,
          stale: now - Date.parse(record.heartbeatAt) > heartbeatMs * STALE_AFTER_HEARTBEATS,
          applied: record.stateVersion >= state.version,
        }
      })
    },
    subscribe (listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    get upcoming () { return upcoming },
    windows: () => store.windows({ from: new Date(Date.now() - 7 * ANNOUNCE_AHEAD_MS).toISOString() }),
    async scheduleWindow (principal, input) {
      if (!principal.canManage && !principal.isEmergency) throw new NotManagerError('Only managers and the emergency user may schedule maintenance')
      const startsAt = normalizeUntil(input.startsAt)
      const endsAt = normalizeUntil(input.endsAt)
      const problem = windowProblem(input.mode, input.reason ?? null, startsAt, endsAt, new Date().toISOString())
      if (problem !== undefined) throw new InvalidStateChangeError(problem)
      const overlapping = (await store.windows({ from: startsAt!, states: ['scheduled', 'active'] })).find((other) => other.startsAt < endsAt!)
      if (overlapping !== undefined) throw new InvalidStateChangeError(`it overlaps the window from ${overlapping.startsAt} to ${overlapping.endsAt}`)
      const reason = input.reason === undefined || input.reason === null || input.reason.trim() === '' ? null : input.reason.trim()
      const window = await store.scheduleWindow({ mode: input.mode as MaintenanceWindow['mode'], reason, startsAt: startsAt!, endsAt: endsAt!, createdBy: principal.name })
      await refreshUpcoming()
      fastify.log.info({ window: window.id, by: principal.name, mode: window.mode, startsAt: window.startsAt, endsAt: window.endsAt }, 'maintenance window scheduled')
      return window
    },
    async cancelWindow (principal, id) {
      if (!principal.canManage && !principal.isEmergency) throw new NotManagerError('Only managers and the emergency user may cancel scheduled maintenance')
      if (!Number.isInteger(id) || id < 1 || id > MAX_VERSION || !await store.cancelWindow(id)) throw new InvalidStateChangeError(`window ${id} has started or ended already, or does not exist`)
      await refreshUpcoming()
    },
    runSchedule: (now) => runSchedule(now ?? new Date()),
    untrack: (request) => untrack(request),
    trackWrite () {
      writesInFlight++
      let done = false
      return () => {
        if (!done) writesInFlight--
        done = true
      }
    },
  }
  fastify.decorate('maintenance', controller)

  // Scheduled windows: every instance looks, one wins each switch (a compare-and-set on the window).
  let upcoming: MaintenanceWindow | null = null

  async function refreshUpcoming (now = new Date()): Promise<void> {
    const soon = await store.windows({ from: now.toISOString(), states: ['scheduled'], limit: 1 })
    const next = soon[0]
    upcoming = next !== undefined && Date.parse(next.startsAt) - now.getTime() < ANNOUNCE_AHEAD_MS ? next : null
  }

  async function runSchedule (now: Date): Promise<void> {
    const at = now.toISOString()
    for (const window of await store.windows({ states: ['scheduled', 'active'] })) {
      if (window.state === 'scheduled' && window.startsAt <= at) await startWindow(window, at)
      else if (window.state === 'active' && window.endsAt <= at) await endWindow(window, at)
    }
    await refreshUpcoming(now)
  }

  async function startWindow (window: MaintenanceWindow, now: string): Promise<void> {
    const missed = window.endsAt <= now
    const outcome = await store.switchForWindow(window.id, 'scheduled', missed ? 'skipped' : 'active', (current) => {
      if (missed) return { change: null, note: 'missed: no instance was running between its start and its end' }
      const request: ChangeRequest = { mode: window.mode, reason: window.reason, until: window.endsAt, expectedVersion: current.version }
      const decision = decideChange(current, request, SCHEDULER, now)
      return {
        change: { attempt: { actor: SCHEDULER.name, channel: 'scheduler', instance: instanceId, toMode: window.mode, reason: window.reason, until: window.endsAt, expectedVersion: current.version }, decision },
        note: decision.outcome === 'applied' ? null : `not started: ${decision.detail}`,
      }
    })
    if (outcome?.decision?.outcome === 'applied') {
      apply(outcome.decision.state)
      fastify.log.info({ window: window.id, mode: window.mode }, 'scheduled maintenance started')
    }
  }

  async function endWindow (window: MaintenanceWindow, now: string): Promise<void> {
    const outcome = await store.switchForWindow(window.id, 'active', 'done', (current) => {
      // Someone changed the state since the start (took over, extended it): leave it to them.
      if (current.version !== window.startedVersion) return { change: null, note: `left as it was: changed by ${current.changedBy ?? 'someone'} after the start` }
      const request: ChangeRequest = { mode: 'normal', reason: null, until: null, expectedVersion: current.version }
      return {
        change: { attempt: { actor: SCHEDULER.name, channel: 'scheduler', instance: instanceId, toMode: 'normal', reason: null, until: null, expectedVersion: current.version }, decision: decideChange(current, request, SCHEDULER, now) },
        note: null,
      }
    })
    if (outcome?.decision?.outcome === 'applied') {
      apply(outcome.decision.state)
      fastify.log.info({ window: window.id }, 'scheduled maintenance ended')
    }
  }

  // The gate: no database query, nothing but a comparison unless the site is exclusive.
  fastify.addHook('onRequest', function maintenanceGate (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    // Set here too for responses that bypass onSend (event streams).
    reply.header('quiesce-mode', state.mode)
    const unsafe = UNSAFE_METHODS.has(request.method)
    ;(request as TrackedRequest)[kTracked] = unsafe ? 'write' : 'request'
    requestsInFlight++
    if (unsafe) writesInFlight++
    if (state.mode !== 'exclusive' || isAlwaysOpen(request) || bypasses(state, principalOf(request))) {
      done()
      return
    }
    reply.code(503).header('retry-after', retryAfter())
    done(refusal(state))
  })

  function untrack (request: FastifyRequest): void {
    const tracked = (request as TrackedRequest)[kTracked]
    if (tracked === undefined) return
    ;(request as TrackedRequest)[kTracked] = undefined
    requestsInFlight--
    if (tracked === 'write') writesInFlight--
  }
  fastify.addHook('onResponse', async function untrackRequest (request) { untrack(request) })
  fastify.addHook('onRequestAbort', async function untrackAbortedRequest (request) { untrack(request) })

  // Every response says the mode, as it is when the response leaves (also after a hook that
  // ran before the gate refused the request); every 503 says when to come back.
  fastify.addHook('onSend', async function describeMode (_request, reply) {
    reply.header('quiesce-mode', state.mode)
    if (reply.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', retryAfter())
  })

  function isAlwaysOpen (request: FastifyRequest): boolean {
    if (request.routeOptions.config.maintenance === 'always-open') return true
    for (const prefix of alwaysOpenPrefixes) if (request.url.startsWith(prefix)) return true
    return false
  }

  // The commit guard: judged on the state as read in the commit's own transaction.
  options.unitOfWork.onBeforeWrites(async function guardCommit ({ transaction, unitOfWork }) {
    let current: MaintenanceState
    try {
      current = await store.readInTransaction(transaction)
    } catch (err) {
      throw new StateUnavailableError('The maintenance state cannot be read right now, so nothing can be saved; try again shortly', { cause: err })
    }
    apply(current)
    if (!mayWrite(current, identify(unitOfWork.principal))) throw refusal(current)
  })

  // A commit this instance already expects to be refused is checked against the database
  // without opening a transaction: one read instead of BEGIN, a locked read and ROLLBACK, and
  // no turn at the write lock (which a maintainer's reindex needs). Allowed ones go on to the guard.
  options.unitOfWork.onBeforeCommit?.(async function refuseEarly ({ unitOfWork }) {
    const principal = identify(unitOfWork.principal)
    if (mayWrite(state, principal)) return
    const current = await refresh()
    if (!mayWrite(current, principal)) throw refusal(current)
  })

  // Each commit records the state version it was applied under, read by its own statement
  // (not the guard's): a history of commits can then be checked against the mode changes.
  const versionStamp = store.versionStamp?.bind(store)
  if (versionStamp !== undefined) options.unitOfWork.stampCommits?.((transaction) => versionStamp(transaction))

  // A retried request is judged by the state fetched again from the database, not the cache.
  options.unitOfWork.onBeforeRetry(async function judgeRetry ({ principal }) {
    const current = await refresh()
    if (!mayWrite(current, identify(principal))) throw refusal(current)
  })

  // Instances register themselves and heartbeat, so the control panel sees who applied what.
  let heartbeatTimer: NodeJS.Timeout | undefined
  let scheduleTimer: NodeJS.Timeout | undefined
  let pendingHeartbeat: NodeJS.Timeout | undefined
  let closing = false

  let beating: Promise<void> | undefined

  /**
   * Never rejects: a failed heartbeat is logged, marks the instance unhealthy, and the next one
   * tries again; the first to succeed after a failure re-reads the state (it may have changed
   * meanwhile on an instance that could still reach the database). One at a time: a heartbeat
   * that hangs on an unresponsive database does not pile up others behind it.
   */
  function heartbeat (): Promise<void> {
    beating ??= beat().finally(() => { beating = undefined })
    return beating
  }

  async function beat (): Promise<void> {
    if (closing) return
    const now = new Date()
    try {
      await store.heartbeat({
        id: instanceId,
        address: addressOf(fastify),
        startedAt,
        heartbeatAt: now.toISOString(),
        stateVersion: state.version,
        requestsInFlight,
        writesInFlight,
      }, new Date(now.getTime() - DROP_AFTER_MS).toISOString())
      if (heartbeatFailing) {
        await refresh()
        fastify.log.info('the database is reachable again')
      }
      heartbeatFailing = false
      heartbeatOkAt = Date.now()
    } catch (err) {
      if (!heartbeatFailing) fastify.log.warn({ err }, 'instance heartbeat failed: the database is unavailable')
      heartbeatFailing = true
    }
  }

  /** Soon after applying a new version, so the control panel shows it without waiting a beat. */
  function requestHeartbeat (): void {
    if (pendingHeartbeat !== undefined || heartbeatTimer === undefined) return
    pendingHeartbeat = setTimeout(() => {
      pendingHeartbeat = undefined
      return heartbeat()
    }, 10)
    pendingHeartbeat.unref()
  }

  fastify.addHook('onReady', async function startMaintenance () {
    if (options.changeSignal !== undefined) {
      await options.changeSignal.start(() => {
        refresh().catch((err: unknown) => fastify.log.warn({ err }, 'could not re-read the maintenance state'))
      })
    }
    await heartbeat()
    heartbeatTimer = setInterval(heartbeat, heartbeatMs)
    heartbeatTimer.unref()
    await refreshUpcoming()
    if (scheduleMs > 0) {
      scheduleTimer = setInterval(() => {
        runSchedule(new Date()).catch((err: unknown) => fastify.log.warn({ err }, 'could not run the maintenance schedule'))
      }, scheduleMs)
      scheduleTimer.unref()
    }
  })

  fastify.addHook('preClose', async function stopMaintenance () {
    closing = true
    clearInterval(heartbeatTimer)
    clearInterval(scheduleTimer)
    clearTimeout(pendingHeartbeat)
    await options.changeSignal?.stop()
    await store.removeInstance(instanceId).catch((err: unknown) => fastify.log.warn({ err }, 'could not unregister the instance'))
  })

  if (options.routes !== false) await fastify.register(maintenanceRoutes, { principalOf, untrack })
}

/**
 * Changes the shared state by the rules of PRODUCT §2.1 (for the plugin's routes, and for a
 * command line that has no running app). Every attempt is in the audit log; a refusal throws
 * the matching `QUIESCE_*` error.
 */
export async function changeMaintenanceState (
  store: MaintenanceStore, principal: MaintenancePrincipal, input: ChangeRequestInput, channel: Channel, instance: string, inputProblem?: string
): Promise<{ previous: MaintenanceState, state: MaintenanceState }> {
  const read = readChangeRequest(input)
  const request = read.request
  const problem = inputProblem ?? read.problem
  const now = new Date().toISOString()
  const { previous, decision } = await store.change(
    { actor: principal.name, channel, instance, toMode: request.mode, reason: request.reason, until: request.until, expectedVersion: request.expectedVersion },
    (current) => problem !== undefined
      ? { outcome: 'refused', reason: 'invalid', detail: problem }
      : decideChange(current, request, principal, now)
  )
  if (decision.outcome === 'applied') return { previous, state: decision.state }
  switch (decision.reason) {
    case 'not-manager': throw new NotManagerError('Only managers and the emergency user may change maintenance mode')
    case 'not-maintainer': throw Object.assign(new NotMaintainerError(previous.maintainer ?? 'nobody'), { maintainer: previous.maintainer })
    case 'version-conflict': throw Object.assign(new StateConflictError(previous.version, request.expectedVersion), { state: publicState(previous, principal) })
    default: throw new InvalidStateChangeError(decision.detail)
  }
}

function windowProblem (mode: string, reason: string | null, startsAt: string | null, endsAt: string | null, now: string): string | undefined {
  if (mode !== 'concurrent' && mode !== 'exclusive') return 'a window\'s mode must be concurrent or exclusive'
  if (reason !== null && reason.length > MAX_REASON_LENGTH) return `the reason must be at most ${MAX_REASON_LENGTH} characters`
  if (reason !== null && hasControlCharacters(reason)) return CONTROL_CHARACTERS_PROBLEM
  if (startsAt === null || !isIsoTimestamp(startsAt)) return 'the start must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z'
  if (endsAt === null || !isIsoTimestamp(endsAt)) return 'the end must be an ISO-8601 date and time, like 2026-11-22T16:00:00Z'
  if (Date.parse(startsAt) <= Date.parse(now)) return 'the start must be in the future'
  if (Date.parse(endsAt) <= Date.parse(startsAt)) return 'the end must be after the start'
  return undefined
}

function addressOf (fastify: FastifyInstance): string | null {
  const address = fastify.server.address()
  if (address === null) return null
  if (typeof address === 'string') return address
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`
}

export default fp(maintenancePlugin, {
  fastify: '5.x',
  name: 'quiesce-maintenance',
})
