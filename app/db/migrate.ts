import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely'
import { maintenanceMigrations } from '../maintenance/migration.js'
import * as foundation from './migrations/2026-11-22-foundation.js'
import * as tasks from './migrations/2026-11-23-tasks.js'

/** Every migration, in order. Dated names; a migration never changes once released. */
export const migrations: Record<string, Migration> = {
  '2026-11-22-foundation': foundation,
  '2026-11-23-tasks': tasks,
  ...maintenanceMigrations,
}

export async function migrateToLatest (db: Kysely<any>): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const result = await migrator.migrateToLatest()
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName
    throw new Error(`migration ${failed ?? ''} failed: ${(result.error as Error).message}`, { cause: result.error })
  }
  return result
}
