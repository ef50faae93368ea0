import type { Kysely, Selectable } from 'kysely'
import type { MaintenanceStore, MaintenanceTables, MaintenanceWindow } from './store.js'

function toWindow (row: Selectable<MaintenanceTables['maintenance_window']>): MaintenanceWindow {
  return {
    id: row.id,
    mode: row.mode,
    reason: row.reason,
    startsAt: row.starts_at,
    endsAt: row.ends_at,
    createdBy: row.created_by,
    createdAt: row.created_at,
    state: row.state,
    startedVersion: row.started_version,
    note: row.note,
  }
}

type WindowQueries = Pick<MaintenanceStore, 'windows' | 'scheduleWindow' | 'cancelWindow'>

/** Scheduled windows (a scheduled switch claims its window in kysely-state.ts, with the change). */
export function windowQueries (db: Kysely<MaintenanceTables>): WindowQueries {
  return {
    async windows ({ from, states, limit = 50 }) {
      let query = db.selectFrom('maintenance_window').selectAll().orderBy('starts_at').orderBy('id').limit(limit)
      if (from !== undefined) query = query.where('ends_at', '>', from)
      if (states !== undefined) query = query.where('state', 'in', states)
      return (await query.execute()).map(toWindow)
    },

    async scheduleWindow (window) {
      const row = await db.insertInto('maintenance_window').values({
        mode: window.mode,
        reason: window.reason,
        starts_at: window.startsAt,
        ends_at: window.endsAt,
        created_by: window.createdBy,
        created_at: new Date().toISOString(),
        state: 'scheduled',
        started_version: null,
        note: null,
      }).returningAll().executeTakeFirstOrThrow()
      return toWindow(row)
    },

    async cancelWindow (id) {
      const result = await db.updateTable('maintenance_window').set({ state: 'cancelled' })
        .where('id', '=', id).where('state', '=', 'scheduled').executeTakeFirst()
      return result.numUpdatedRows > 0n
    },
  }
}
