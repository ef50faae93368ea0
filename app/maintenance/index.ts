import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { createController, type MaintenanceController } from './controller.js'
import { registerGate } from './gate.js'
import { guardCommits } from './guard.js'
import { resolveOptions, type MaintenancePluginOptions } from './options.js'
import { InstanceRegistry } from './registry.js'
import maintenanceRoutes from './routes.js'
import { Scheduler } from './scheduler.js'
import { retryAfterSeconds } from './state.js'
import { StateCache } from './state-cache.js'
import { RequestTracker, untrackFinishedRequests } from './tracking.js'

// The PostgreSQL listener is not re-exported: import it from './postgres-notifications.js', so
// that a host on SQLite never loads `pg`.
export { changeMaintenanceState } from './change.js'
export { pollingSignal, type ChangeSignal, type PollingSignalOptions } from './change-signals.js'
export type { MaintenanceController } from './controller.js'
export { InvalidOptionError, MAINTENANCE_ERRORS } from './errors.js'
export { kyselyMaintenanceStore } from './kysely-store.js'
export { maintenanceInstanceDetailsMigration, maintenanceMigration, maintenanceMigrations, maintenanceWindowsMigration } from './migration.js'
export type { CommitSeams, MaintenancePluginOptions } from './options.js'
export type { InstanceView } from './registry.js'
export { SCHEDULER, type WindowInput } from './scheduler.js'
export * from './state.js'
export type { InstanceRecord, LogEntry, LogFilter, MaintenanceStore, MaintenanceTables, MaintenanceWindow, WindowState } from './store.js'

declare module 'fastify' {
  interface FastifyInstance {
    maintenance: MaintenanceController
  }
}

/**
 * Maintenance mode for a Fastify site: Normal, Concurrent (read-only) and Exclusive, shared by
 * every instance through the database, enforced by an `onRequest` gate that never queries the
 * database and by a guard inside every commit transaction that always does. This only wires
 * the parts together; each is a file of its own.
 */
const plugin: FastifyPluginAsync<MaintenancePluginOptions> = async function maintenancePlugin (fastify, given) {
  const options = resolveOptions(given)
  const { store, instanceId, changeSignal } = options
  const cache = await StateCache.load(store)
  const tracker = new RequestTracker()
  const registry = new InstanceRegistry(fastify, { store, cache, tracker, instanceId, heartbeatMs: options.heartbeatMs, standby: options.standby, registryStore: options.registryStore, describeInstance: options.describeInstance })
  const scheduler = new Scheduler({ store, cache, instanceId, scheduleMs: options.scheduleMs, log: fastify.log, standby: options.standby })
  const retryAfter = () => retryAfterSeconds(cache.state, options.retryAfterSeconds)
  cache.subscribe(() => registry.requestHeartbeat())

  fastify.decorate('maintenance', createController(fastify, { options, cache, tracker, registry, scheduler, retryAfter }))
  registerGate(fastify, { cache, tracker, principalOf: options.principalOf, alwaysOpenPrefixes: options.alwaysOpenPrefixes, retryAfter })
  untrackFinishedRequests(fastify, tracker)
  guardCommits(options.unitOfWork, { store, cache, identify: options.identify })

  fastify.addHook('onReady', async function startMaintenance () {
    await changeSignal?.start(() => {
      cache.refresh().catch((err: unknown) => fastify.log.warn({ err }, 'could not re-read the maintenance state'))
    })
    await registry.start()
    await scheduler.start()
  })

  fastify.addHook('preClose', async function stopMaintenance () {
    registry.stop()
    scheduler.stop()
    await changeSignal?.stop()
    await registry.unregister()
  })

  if (options.routes) await fastify.register(maintenanceRoutes, { principalOf: options.principalOf, untrack: (request) => tracker.untrack(request) })
}

const maintenancePlugin = fp(plugin, {
  fastify: '5.x',
  name: 'quiesce-maintenance',
})

export default maintenancePlugin
export { maintenancePlugin }
