import { Migrator, sql, type Kysely } from 'kysely'
import { migrations } from './migrate.js'
import type { DB } from './schema.js'

/** How often a standby instance asks whether its database was promoted. */
export const PROMOTION_POLL_MS = 250

/** Whether the server is a hot standby now (`pg_is_in_recovery()`): it replays a primary's WAL and takes no writes. */
export async function inRecovery (db: Kysely<DB>): Promise<boolean> {
  const { rows } = await sql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery`.execute(db)
  return rows[0]?.recovery === true
}

/**
 * A standby cannot migrate: its schema is the primary's, replicated. This version of Quiesce
 * runs on it only once an instance on the primary has brought the schema up to date.
 */
export async function assertSchemaCurrent (db: Kysely<DB>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const pending = (await migrator.getMigrations()).filter((migration) => migration.executedAt === undefined)
  if (pending.length > 0) {
    throw new Error(`this database is a hot standby whose schema is older than this version of Quiesce (${pending.length} migration(s) not applied, first ${pending[0]!.name}): ` +
      'start this version on the primary first (it migrates the schema, and the standby replays it), then here')
  }
}

/**
 * What a standby instance knows of its database's role: a standby until it is promoted
 * (`pg_promote()`), then a primary for good (a primary never becomes a standby without a
 * restart of the server, which ends every connection). Polled every {@link PROMOTION_POLL_MS}
 * on a pooled reader connection; a failed poll (the server restarting) is tried again.
 */
export class StandbyWatch {
  #standby = true
  #timer: NodeJS.Timeout | undefined
  #polling = false
  readonly #listeners: Array<() => void> = []
  readonly #db: Kysely<DB>

  constructor (db: Kysely<DB>, intervalMs = PROMOTION_POLL_MS) {
    this.#db = db
    this.#timer = setInterval(() => { this.#poll() }, intervalMs)
    this.#timer.unref()
  }

  get standby (): boolean {
    return this.#standby
  }

  /** Called once, when the database is found promoted. */
  onPromoted (listener: () => void): void {
    this.#listeners.push(listener)
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  #poll (): void {
    if (this.#polling) return
    this.#polling = true
    inRecovery(this.#db).then((recovery) => {
      if (recovery) return
      this.#standby = false
      this.stop()
      for (const listener of this.#listeners) listener()
    }, () => {}).finally(() => { this.#polling = false })
  }
}
