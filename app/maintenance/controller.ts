import type { FastifyInstance, FastifyRequest } from 'fastify'
import { changeMaintenanceState } from './change.js'
import type { ResolvedOptions } from './options.js'
import type { InstanceRegistry, InstanceView } from './registry.js'
import type { Scheduler, WindowInput } from './scheduler.js'
import { mayWrite, publicState, type Channel, type ChangeRequestInput, type MaintenancePrincipal, type MaintenanceState, type PublicState } from './state.js'
import type { StateCache } from './state-cache.js'
import type { LogEntry, LogFilter, MaintenanceWindow } from './store.js'
import type { RequestTracker } from './tracking.js'

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
  /** The database is a read-only standby now (the `standby` option): nothing can be changed here. */
  readonly standby: boolean
  /** When this instance last read the state from the database (ISO-8601). */
  readonly confirmedAt: string
  mayWrite (principal: MaintenancePrincipal | null): boolean
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

interface ControllerParts {
  options: ResolvedOptions
  cache: StateCache
  tracker: RequestTracker
  registry: InstanceRegistry
  scheduler: Scheduler
  retryAfter: () => number
}

/** The controller: each member hands over to the part that owns it. */
export function createController (fastify: FastifyInstance, { options, cache, tracker, registry, scheduler, retryAfter }: ControllerParts): MaintenanceController {
  const { store, instanceId } = options
  return {
    get state () { return cache.state },
    instanceId,
    get healthy () { return registry.healthy },
    get standby () { return options.standby() },
    get confirmedAt () { return new Date(cache.confirmedAt).toISOString() },
    mayWrite: (principal) => mayWrite(cache.state, principal),
    publicState: (viewer) => publicState(cache.state, viewer),
    retryAfter,
    refresh: () => cache.refresh(),
    async change (principal, input, channel, inputProblem) {
      const { previous, state: next } = await changeMaintenanceState(store, principal, input, channel, instanceId, inputProblem)
      cache.apply(previous)
      cache.apply(next)
      fastify.log.info({ actor: principal.name, channel, from: previous.mode, to: next.mode, version: next.version }, 'maintenance state changed')
      return next
    },
    log: (limit, beforeId, filter) => store.log(limit, beforeId, filter),
    countLog: (filter) => store.countLog(filter),
    logActors: () => store.logActors(),
    instances: (asking) => registry.instances(asking),
    subscribe: (listener) => cache.subscribe(listener),
    get upcoming () { return scheduler.upcoming },
    windows: () => scheduler.windows(),
    scheduleWindow: (principal, input) => scheduler.scheduleWindow(principal, input),
    cancelWindow: (principal, id) => scheduler.cancelWindow(principal, id),
    runSchedule: (now) => scheduler.runSchedule(now ?? new Date()),
    untrack: (request) => tracker.untrack(request),
    trackWrite: () => tracker.trackWrite(),
  }
}
