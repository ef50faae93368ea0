import { setTimeout as sleep } from 'node:timers/promises'
import { Migrator, type Kysely, type Migration, type MigrationResultSet } from 'kysely'
import { maintenanceMigrations } from '../maintenance/migration.js'
import { classifyDatabaseError } from './errors.js'
import * as foundation from './migrations/2026-11-22-foundation.js'
import * as tasks from './migrations/2026-11-23-tasks.js'
import * as userAdmin from './migrations/2026-12-02-user-admin.js'
import * as signInFailures from './migrations/2026-12-03-sign-in-failures.js'
import * as commitStateVersion from './migrations/2026-12-04-commit-state-version.js'
import * as documentListing from './migrations/2026-12-07-document-listing.js'
import * as documentCount from './migrations/2026-12-08-document-count.js'

/** Every migration, in order. Dated names; a migration never changes once released. */
export const migrations: Record<string, Migration> = {
  '2026-11-22-foundation': foundation,
  '2026-11-23-tasks': tasks,
  '2026-12-02-user-admin': userAdmin,
  '2026-12-03-sign-in-failures': signInFailures,
  ...maintenanceMigrations,
  '2026-12-04-commit-state-version': commitStateVersion,
  '2026-12-07-document-listing': documentListing,
  '2026-12-08-document-count': documentCount,
}

/** How long a process waits for another one's migrations before it gives up. */
const MIGRATION_WAIT_MS = 120_000

/**
 * Brings the schema up to date. Migrations run under a lock that holds across processes
 * (PostgreSQL: Kysely's advisory lock; SQLite: one `BEGIN IMMEDIATE` transaction), so of two
 * processes that start at the same moment one migrates and the other waits, then finds
 * nothing left to do. A wait longer than SQLite's lock timeout is retried here.
 */
export async function migrateToLatest (db: Kysely<any>): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const giveUpAt = Date.now() + MIGRATION_WAIT_MS
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    const result = await migrator.migrateToLatest()
    if (result.error === undefined) return result
    if (classifyDatabaseError(result.error) === 'busy' && Date.now() < giveUpAt) {
      await sleep(delay)
      continue
    }
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName
    throw new Error(`migration ${failed ?? ''} failed: ${(result.error as Error).message}`, { cause: result.error })
  }
}
