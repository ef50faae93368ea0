import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { sql } from 'kysely'
import { buildApp } from './app.js'
import { ensureManager, newFirstManager, type FirstManager } from './auth/bootstrap.js'
import { hasUsers } from './auth/users.js'
import { ensureSessionSecret, type Config } from './config.js'
import { catalogFor } from './content/catalog.js'
import { countDocuments } from './content/documents.js'
import { DEMO_DOCUMENTS, insertGenerated } from './content/seed.js'
import { openDatabase, type Database } from './db/database.js'

interface Site {
  app: FastifyInstance
  /** The manager created for a new site, whose password is shown this once; undefined otherwise. */
  firstManager: FirstManager | undefined
}

/**
 * The site, ready to listen: its database opened and migrated, a new site set up (demo
 * documents, a first manager), the app built on them. The app closes the database with it; if
 * anything fails before the app exists, the database is closed here.
 */
export async function openSite (config: Config, logger: FastifyServerOptions['logger']): Promise<Site> {
  ensureSessionSecret(config)
  const database = await openDatabase(config.database, { replicas: config.replicas, primaryUrl: config.primaryDatabaseUrl })
  try {
    const firstManager = await setUpNewSite(database)
    const app = await buildApp({ config, database, logger })
    if (config.primaryDatabaseUrl !== null && !database.standby) app.log.warn('QUIESCE_PRIMARY_DATABASE_URL is not used: QUIESCE_DATABASE_URL is a primary, where this instance registers itself')
    return { app, firstManager }
  } catch (err) {
    await database.destroy()
    throw err
  }
}

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
    const isNewSite = await countDocuments(transaction) === 0 && !await hasUsers(transaction)
    if (isNewSite) await insertGenerated(transaction, catalog, 1, DEMO_DOCUMENTS + 1)
    return ensureManager(transaction, candidate)
  })
}

/** What the process prints once it listens at `address`, for the manager a new site got. */
export function firstManagerNotice (firstManager: FirstManager, address: string): string {
  return [
    '',
    '  A manager account was created for this new site; the password is shown only this once:',
    '',
    `    user:      ${firstManager.username}`,
    `    password:  ${firstManager.password}`,
    '',
    `  Sign in at ${address}/login and change it with \`quiesce user passwd ${firstManager.username}\`.`,
    '',
  ].join('\n')
}
