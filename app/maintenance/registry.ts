import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { StateCache } from './state-cache.js'
import type { InstanceRecord, MaintenanceStore } from './store.js'
import type { RequestTracker } from './tracking.js'

export interface InstanceView extends InstanceRecord {
  /** No heartbeat for a while: the instance may be gone. */
  stale: boolean
  /** It enforces the current state version. */
  applied: boolean
}

interface RegistryOptions {
  store: MaintenanceStore
  cache: StateCache
  tracker: RequestTracker
  instanceId: string
  heartbeatMs: number
  /** A standby's database takes no writes: it reads the state, and heartbeats into `registryStore` if there is one. */
  standby: () => boolean
  /** Where the instance registers while `standby()`: the primary's registry. */
  registryStore: RegistryStore | undefined
  /** What the instance says about itself (JSON), with each heartbeat. */
  describeInstance: () => Record<string, unknown> | null
}

type RegistryStore = Pick<MaintenanceStore, 'heartbeat' | 'removeInstance'>

const STALE_AFTER_HEARTBEATS = 3
const DROP_AFTER_MS = 60_000
const CONFIRM_WITHIN_MS = 30_000

/**
 * Instances register themselves and heartbeat (a write every `heartbeatMs`), so the control
 * panel sees who applied what, and each instance knows whether it can use its database now.
 */
export class InstanceRegistry {
  readonly #fastify: FastifyInstance
  readonly #options: RegistryOptions
  readonly #startedAt = new Date().toISOString()
  #heartbeatOkAt: number
  #heartbeatFailing = false
  #heartbeatTimer: NodeJS.Timeout | undefined
  #pendingHeartbeat: NodeJS.Timeout | undefined
  #beating: Promise<void> | undefined
  #closing = false
  /** The primary's registry (`registryStore`) holds a row of this instance, and failing to write it was logged. */
  #inPrimaryRegistry = false
  #primaryHeartbeatFailing = false
  #beatingIntoPrimary: Promise<void> | undefined

  constructor (fastify: FastifyInstance, options: RegistryOptions) {
    this.#fastify = fastify
    this.#options = options
    this.#heartbeatOkAt = options.cache.confirmedAt
  }

  /** False while its last heartbeat failed, none succeeded for three intervals, or the state was not confirmed for 30 s. */
  get healthy (): boolean {
    const now = Date.now()
    return !this.#heartbeatFailing &&
      now - this.#heartbeatOkAt < this.#options.heartbeatMs * STALE_AFTER_HEARTBEATS &&
      now - this.#options.cache.confirmedAt < CONFIRM_WITHIN_MS
  }

  /**
   * The registered instances. This instance's own row as it is now, not as of its last
   * heartbeat (up to a beat old): right after a switch the control panel should not call its own
   * instance behind. `asking`, the request that asks, is not one of the requests it reports.
   */
  async instances (asking?: FastifyRequest): Promise<InstanceView[]> {
    const { store, cache, tracker, instanceId, heartbeatMs } = this.#options
    const now = Date.now()
    const state = cache.state
    return (await store.instances()).map((stored) => {
      const record = stored.id === instanceId && !this.#closing
        ? { ...stored, heartbeatAt: new Date(now).toISOString(), stateVersion: state.version, ...tracker.countsWithout(asking), details: this.#details() }
        : stored
      return {
        ...record,
        stale: now - Date.parse(record.heartbeatAt) > heartbeatMs * STALE_AFTER_HEARTBEATS,
        applied: record.stateVersion >= state.version,
      }
    })
  }

  /** The first heartbeat, then one every `heartbeatMs`. */
  async start (): Promise<void> {
    await this.#heartbeat()
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#options.heartbeatMs)
    this.#heartbeatTimer.unref()
  }

  /** Soon after applying a new version, so the control panel shows it without waiting a beat. */
  requestHeartbeat (): void {
    if (this.#pendingHeartbeat !== undefined || this.#heartbeatTimer === undefined) return
    this.#pendingHeartbeat = setTimeout(() => {
      this.#pendingHeartbeat = undefined
      return this.#heartbeat()
    }, 10)
    this.#pendingHeartbeat.unref()
  }

  /** No more heartbeats (the instance is closing). */
  stop (): void {
    this.#closing = true
    clearInterval(this.#heartbeatTimer)
    clearTimeout(this.#pendingHeartbeat)
  }

  /** Leaves the registry; a failure is logged, the row goes stale and is dropped by the others. */
  async unregister (): Promise<void> {
    const { store, registryStore, standby, instanceId } = this.#options
    const leave = (from: RegistryStore) => from.removeInstance(instanceId).catch((err: unknown) => this.#fastify.log.warn({ err }, 'could not unregister the instance'))
    // A heartbeat into the primary still on its way would bring the row back after the removal
    // (waited for up to a second: a primary that hangs does not hold up the shutdown).
    if (this.#beatingIntoPrimary !== undefined) await Promise.race([this.#beatingIntoPrimary, sleep(1000, undefined, { ref: false })])
    if (this.#inPrimaryRegistry && registryStore !== undefined) await leave(registryStore)
    if (!standby()) await leave(store)
  }

  /**
   * Never rejects: a failed heartbeat is logged, marks the instance unhealthy, and the next one
   * tries again; the first to succeed after a failure re-reads the state (it may have changed
   * meanwhile on an instance that could still reach the database). One at a time: a heartbeat
   * that hangs on an unresponsive database does not pile up others behind it.
   */
  #heartbeat (): Promise<void> {
    this.#beating ??= this.#beat().finally(() => { this.#beating = undefined })
    return this.#beating
  }

  /** The host's description of this instance; one that throws is logged and left out, not a failed heartbeat. */
  #details (): Record<string, unknown> | null {
    try {
      return this.#options.describeInstance()
    } catch (err) {
      this.#fastify.log.warn({ err }, 'describeInstance failed')
      return null
    }
  }

  /** Writes this instance's row as of `now` into `registry`, which drops the rows gone stale meanwhile. */
  #heartbeatInto (registry: RegistryStore, now: Date): Promise<void> {
    const { cache, tracker, instanceId } = this.#options
    return registry.heartbeat({
      id: instanceId,
      address: addressOf(this.#fastify),
      startedAt: this.#startedAt,
      heartbeatAt: now.toISOString(),
      stateVersion: cache.state.version,
      requestsInFlight: tracker.requestsInFlight,
      writesInFlight: tracker.writesInFlight,
      details: this.#details(),
    }, new Date(now.getTime() - DROP_AFTER_MS).toISOString())
  }

  /**
   * A standby instance's heartbeat in the primary's registry, not waited for: its health is its
   * own database's. A primary that cannot be reached (or hangs) is logged, once until it can be
   * again, and the copy serves on. One at a time, like the heartbeat.
   */
  #beatIntoPrimary (registryStore: RegistryStore, now: Date): void {
    this.#beatingIntoPrimary ??= this.#writeIntoPrimary(registryStore, now).finally(() => { this.#beatingIntoPrimary = undefined })
  }

  async #writeIntoPrimary (registryStore: RegistryStore, now: Date): Promise<void> {
    try {
      await this.#heartbeatInto(registryStore, now)
      this.#inPrimaryRegistry = true
      if (this.#primaryHeartbeatFailing) this.#fastify.log.info('the primary\'s registry is reachable again')
      this.#primaryHeartbeatFailing = false
    } catch (err) {
      if (!this.#primaryHeartbeatFailing) this.#fastify.log.warn({ err }, 'could not register in the primary\'s registry: the primary\'s control panel does not list this instance')
      this.#primaryHeartbeatFailing = true
    }
  }

  /**
   * Once promoted, the instance registers in its own database; its row in the former primary's
   * registry is removed if that primary can still be reached (otherwise it goes stale there).
   */
  #leavePrimaryRegistry (): void {
    const { registryStore, instanceId } = this.#options
    if (!this.#inPrimaryRegistry || registryStore === undefined) return
    this.#inPrimaryRegistry = false
    registryStore.removeInstance(instanceId).catch((err: unknown) => this.#fastify.log.info({ err }, 'could not leave the former primary\'s registry'))
  }

  async #beat (): Promise<void> {
    if (this.#closing) return
    const { store, cache, standby, registryStore } = this.#options
    const now = new Date()
    try {
      if (standby()) {
        await cache.refresh()
        if (registryStore !== undefined) this.#beatIntoPrimary(registryStore, now)
      } else {
        this.#leavePrimaryRegistry()
        await this.#heartbeatInto(store, now)
      }
      if (this.#heartbeatFailing) {
        await cache.refresh()
        this.#fastify.log.info('the database is reachable again')
      }
      this.#heartbeatFailing = false
      this.#heartbeatOkAt = Date.now()
    } catch (err) {
      if (!this.#heartbeatFailing) this.#fastify.log.warn({ err }, 'instance heartbeat failed: the database is unavailable')
      this.#heartbeatFailing = true
    }
  }
}

function addressOf (fastify: FastifyInstance): string | null {
  const address = fastify.server.address()
  if (address === null) return null
  if (typeof address === 'string') return address
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`
}
