import { sql } from 'kysely'
import { ensureManager, newFirstManager, type FirstManager } from './auth/bootstrap.js'
import { catalogFor } from './content/catalog.js'
import { countDocuments } from './content/documents.js'
import { DEMO_DOCUMENTS, insertGenerated } from './content/seed.js'
import type { Database } from './db/database.js'

/** Any number will do, as long as nothing else takes this advisory lock. */
const SETUP_LOCK = 0x5175_6965

/**
 * The first start of a new site: demo documents when it has no users and no documents, and a
 * first manager when it has none (returned, so the caller prints the password once). One
 * transaction that holds the setup lock (SQLite: the write lock of `BEGIN IMMEDIATE`), so of
 * two processes that start at the same moment exactly one sets the site up. Nothing on a standby.
 */
export async function setUpNewSite (database: Database): Promise<FirstManager | undefined> {
  // A standby replicates the primary, which sets itself up.
  if (database.standby) return undefined
  const candidate = await newFirstManager()
  const catalog = catalogFor(database.kind)
  return database.writer.transaction().execute(async (transaction) => {
    if (database.kind === 'postgres') await sql`select pg_advisory_xact_lock(${SETUP_LOCK})`.execute(transaction)
    const isNewSite = await countDocuments(transaction) === 0 &&
      (await transaction.selectFrom('app_user').select('id').limit(1).execute()).length === 0
    if (isNewSite) await insertGenerated(transaction, catalog, 1, DEMO_DOCUMENTS + 1)
    return ensureManager(transaction, candidate)
  })
}
