import type { FastifyBaseLogger } from 'fastify'
import { InvalidStateChangeError, NotManagerError } from './errors.js'
import {
  CONTROL_CHARACTERS_PROBLEM, MAX_REASON_LENGTH, MAX_VERSION, decideChange, hasControlCharacters, isIsoTimestamp, mayManage, normalizeUntil,
  type ChangeRequest, type MaintenancePrincipal,
} from './state.js'
import type { StateCache } from './state-cache.js'
import type { MaintenanceStore, MaintenanceWindow } from './store.js'

/** Who performs scheduled switches; it is the maintainer of the windows it opens. */
export const SCHEDULER: MaintenancePrincipal = { name: 'scheduler', canManage: true, isEmergency: false }
const ANNOUNCE_AHEAD_MS = 24 * 60 * 60 * 1000

export interface WindowInput {
  mode: string
  reason?: string | null
  startsAt: string
  endsAt: string
}

type WindowPlan = Pick<MaintenanceWindow, 'mode' | 'reason' | 'startsAt' | 'endsAt'>

interface SchedulerOptions {
  store: MaintenanceStore
  cache: StateCache
  instanceId: string
  scheduleMs: number
  log: FastifyBaseLogger
  /** A standby's database takes no writes: no switches while it says so. */
  standby?: () => boolean
}

/** Scheduled windows: every instance looks, one wins each switch (a compare-and-set on the window). */
export class Scheduler {
  readonly #options: SchedulerOptions
  #upcoming: MaintenanceWindow | null = null
  #timer: NodeJS.Timeout | undefined

  constructor (options: SchedulerOptions) {
    this.#options = options
  }

  /** The next scheduled window starting within a day, for the announcement on every page. */
  get upcoming (): MaintenanceWindow | null {
    return this.#upcoming
  }

  /** Scheduled, active and recent windows, soonest first. */
  windows (): Promise<MaintenanceWindow[]> {
    return this.#options.store.windows({ from: new Date(Date.now() - 7 * ANNOUNCE_AHEAD_MS).toISOString() })
  }

  async scheduleWindow (principal: MaintenancePrincipal, input: WindowInput): Promise<MaintenanceWindow> {
    if (!mayManage(principal)) throw new NotManagerError('schedule maintenance')
    const { store, log } = this.#options
    const read = readWindow(input, new Date().toISOString())
    if (read.problem !== undefined) throw new InvalidStateChangeError(read.problem)
    const { plan } = read
    const overlapping = (await store.windows({ from: plan.startsAt, states: ['scheduled', 'active'] })).find((other) => other.startsAt < plan.endsAt)
    if (overlapping !== undefined) throw new InvalidStateChangeError(`it overlaps the window from ${overlapping.startsAt} to ${overlapping.endsAt}`)
    const window = await store.scheduleWindow({ ...plan, createdBy: principal.name })
    await this.refreshUpcoming()
    log.info({ window: window.id, by: principal.name, mode: window.mode, startsAt: window.startsAt, endsAt: window.endsAt }, 'maintenance window scheduled')
    return window
  }

  async cancelWindow (principal: MaintenancePrincipal, id: number): Promise<void> {
    if (!mayManage(principal)) throw new NotManagerError('cancel scheduled maintenance')
    if (!Number.isInteger(id) || id < 1 || id > MAX_VERSION || !await this.#options.store.cancelWindow(id)) throw new InvalidStateChangeError(`window ${id} has started or ended already, or does not exist`)
    await this.refreshUpcoming()
  }

  /** Performs the switches that are due at `now`. */
  async runSchedule (now: Date): Promise<void> {
    // A standby takes no writes; the primary's instances switch, and the state replicates here.
    if (this.#options.standby?.() === true) return
    const at = now.toISOString()
    for (const window of await this.#options.store.windows({ states: ['scheduled', 'active'] })) {
      if (window.state === 'scheduled' && window.startsAt <= at) await this.#startWindow(window, at)
      else if (window.state === 'active' && window.endsAt <= at) await this.#endWindow(window, at)
    }
    await this.refreshUpcoming(now)
  }

  async refreshUpcoming (now = new Date()): Promise<void> {
    const soon = await this.#options.store.windows({ from: now.toISOString(), states: ['scheduled'], limit: 1 })
    const next = soon[0]
    this.#upcoming = next !== undefined && Date.parse(next.startsAt) - now.getTime() < ANNOUNCE_AHEAD_MS ? next : null
  }

  /** Looks for due switches every `scheduleMs` (never with 0). */
  async start (): Promise<void> {
    await this.refreshUpcoming()
    const { scheduleMs, log } = this.#options
    if (scheduleMs === 0) return
    this.#timer = setInterval(() => {
      this.runSchedule(new Date()).catch((err: unknown) => log.warn({ err }, 'could not run the maintenance schedule'))
    }, scheduleMs)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  async #startWindow (window: MaintenanceWindow, now: string): Promise<void> {
    const { store, cache, instanceId, log } = this.#options
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
      cache.apply(outcome.decision.state)
      log.info({ window: window.id, mode: window.mode }, 'scheduled maintenance started')
    }
  }

  async #endWindow (window: MaintenanceWindow, now: string): Promise<void> {
    const { store, cache, instanceId, log } = this.#options
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
      cache.apply(outcome.decision.state)
      log.info({ window: window.id }, 'scheduled maintenance ended')
    }
  }
}

/** A window as submitted, checked against `now`: what to store, or what is wrong with it. */
function readWindow (input: WindowInput, now: string): { plan: WindowPlan, problem?: undefined } | { problem: string } {
  const { mode } = input
  const reason = input.reason ?? null
  const startsAt = normalizeUntil(input.startsAt)
  const endsAt = normalizeUntil(input.endsAt)
  if (mode !== 'concurrent' && mode !== 'exclusive') return { problem: 'a window\'s mode must be concurrent or exclusive' }
  if (reason !== null && reason.length > MAX_REASON_LENGTH) return { problem: `the reason must be at most ${MAX_REASON_LENGTH} characters` }
  if (reason !== null && hasControlCharacters(reason)) return { problem: CONTROL_CHARACTERS_PROBLEM }
  if (startsAt === null || !isIsoTimestamp(startsAt)) return { problem: 'the start must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z' }
  if (endsAt === null || !isIsoTimestamp(endsAt)) return { problem: 'the end must be an ISO-8601 date and time, like 2026-11-22T16:00:00Z' }
  if (Date.parse(startsAt) <= Date.parse(now)) return { problem: 'the start must be in the future' }
  if (Date.parse(endsAt) <= Date.parse(startsAt)) return { problem: 'the end must be after the start' }
  return { plan: { mode, reason: reason === null || reason.trim() === '' ? null : reason.trim(), startsAt, endsAt } }
}
