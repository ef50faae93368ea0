import type BetterSqlite3 from 'better-sqlite3'
import { mayWrite, type MaintenanceState } from '../app/maintenance/state.js'
import { pageBanner, type Banner } from '../app/web/view.js'

interface StateRow {
  mode: MaintenanceState['mode']
  maintainer: string | null
  reason: string | null
  since: string
  until: string | null
  version: number
  changed_by: string | null
  changed_at: string
}

/** The site's maintenance state as stored (the app keeps the same in memory). */
export function readMaintenanceState (sqlite: BetterSqlite3.Database): MaintenanceState {
  const row = sqlite.prepare<[], StateRow>('select * from maintenance_state where id = 1').get()
  if (row === undefined) throw new Error('no maintenance state in the database; start the app on it first')
  return { mode: row.mode, maintainer: row.maintainer, reason: row.reason, since: row.since, until: row.until, version: row.version, changedBy: row.changed_by, changedAt: row.changed_at }
}

/**
 * What app/web/view.ts fillPageLocals gives the layout's banner for an anonymous visitor, with no
 * maintenance window announced (the benchmark schedules none).
 */
export function anonymousBanner (state: MaintenanceState): Banner {
  return pageBanner(state, null, mayWrite(state, null), null)
}
