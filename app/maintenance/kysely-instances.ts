import type { Kysely } from 'kysely'
import type { MaintenanceStore, MaintenanceTables } from './store.js'

type InstanceQueries = Pick<MaintenanceStore, 'heartbeat' | 'instances' | 'removeInstance'>

/** The registry of running instances and their heartbeats. */
export function instanceQueries (db: Kysely<MaintenanceTables>): InstanceQueries {
  return {
    async heartbeat (instance, dropOlderThan) {
      const row = {
        id: instance.id,
        address: instance.address,
        started_at: instance.startedAt,
        heartbeat_at: instance.heartbeatAt,
        state_version: instance.stateVersion,
        requests_in_flight: instance.requestsInFlight,
        writes_in_flight: instance.writesInFlight,
        details: instance.details === null ? null : JSON.stringify(instance.details),
      }
      await db.insertInto('maintenance_instance').values(row)
        .onConflict((oc) => oc.column('id').doUpdateSet({ ...row, id: undefined }))
        .execute()
      await db.deleteFrom('maintenance_instance').where('heartbeat_at', '<', dropOlderThan).execute()
    },

    async instances () {
      const rows = await db.selectFrom('maintenance_instance').selectAll().orderBy('id').execute()
      return rows.map((row) => ({
        id: row.id,
        address: row.address,
        startedAt: row.started_at,
        heartbeatAt: row.heartbeat_at,
        stateVersion: row.state_version,
        requestsInFlight: row.requests_in_flight,
        writesInFlight: row.writes_in_flight,
        details: detailsOf(row.details),
      }))
    },

    async removeInstance (id) {
      await db.deleteFrom('maintenance_instance').where('id', '=', id).execute()
    },
  }
}

/** A row's details; a value that is not a JSON object (written by something else) reads as none. */
function detailsOf (text: string | null): Record<string, unknown> | null {
  if (text === null) return null
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null
  } catch {
    return null
  }
}
