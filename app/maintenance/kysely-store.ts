import { SqliteAdapter, type Kysely } from 'kysely'
import { instanceQueries } from './kysely-instances.js'
import { logQueries } from './kysely-log.js'
import { stateQueries } from './kysely-state.js'
import { windowQueries } from './kysely-windows.js'
import type { MaintenanceStore, MaintenanceTables } from './store.js'

/** The built-in store over Kysely, for SQLite and PostgreSQL alike; `database` must include {@link MaintenanceTables}. */
export function kyselyMaintenanceStore<T extends MaintenanceTables> (database: Kysely<T>): MaintenanceStore {
  const db = database as unknown as Kysely<MaintenanceTables>
  const postgres = !(db.getExecutor().adapter instanceof SqliteAdapter)
  return {
    ...stateQueries(db, postgres),
    ...logQueries(db),
    ...windowQueries(db),
    ...instanceQueries(db),
  }
}
