import type { Kysely, SelectQueryBuilder } from 'kysely'
import type { LogFilter, MaintenanceStore, MaintenanceTables } from './store.js'

function filtered<Q extends SelectQueryBuilder<MaintenanceTables, 'maintenance_log', any>> (query: Q, filter: LogFilter): Q {
  let narrowed = query as SelectQueryBuilder<MaintenanceTables, 'maintenance_log', any>
  if (filter.actor !== undefined) narrowed = narrowed.where('actor', '=', filter.actor)
  if (filter.outcome !== undefined) narrowed = narrowed.where('outcome', '=', filter.outcome)
  if (filter.channel !== undefined) narrowed = narrowed.where('channel', '=', filter.channel)
  if (filter.from !== undefined) narrowed = narrowed.where('at', '>=', filter.from)
  if (filter.to !== undefined) narrowed = narrowed.where('at', '<', filter.to)
  if (filter.afterId !== undefined) narrowed = narrowed.where('id', '>', filter.afterId)
  return narrowed as Q
}

type LogQueries = Pick<MaintenanceStore, 'log' | 'countLog' | 'logActors'>

/** The audit log, read (its entries are written with each change, in kysely-state.ts). */
export function logQueries (db: Kysely<MaintenanceTables>): LogQueries {
  return {
    async log (limit, beforeId, filter = {}) {
      let query = filtered(db.selectFrom('maintenance_log').selectAll(), filter).limit(limit)
      if (beforeId !== undefined) query = query.where('id', '<', beforeId)
      // Newer than `afterId`: the oldest of those, then turned round to newest first.
      query = query.orderBy('id', filter.afterId !== undefined ? 'asc' : 'desc')
      const rows = await query.execute()
      if (filter.afterId !== undefined) rows.reverse()
      return rows.map((row) => ({
        id: row.id,
        at: row.at,
        actor: row.actor,
        channel: row.channel,
        instance: row.instance,
        fromMode: row.from_mode,
        toMode: row.to_mode,
        reason: row.reason,
        until: row.until,
        expectedVersion: row.expected_version,
        newVersion: row.new_version,
        outcome: row.outcome,
        detail: row.detail,
      }))
    },

    async countLog (filter = {}) {
      const row = await filtered(db.selectFrom('maintenance_log').select((eb) => eb.fn.countAll<string | number>().as('n')), { ...filter, afterId: undefined })
        .executeTakeFirstOrThrow()
      return Number(row.n)
    },

    async logActors () {
      const rows = await db.selectFrom('maintenance_log').select('actor').distinct().orderBy('actor').limit(200).execute()
      return rows.map((row) => row.actor)
    },
  }
}
