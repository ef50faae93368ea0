import type { Expression, Kysely, Transaction } from 'kysely'
import type { DB } from '../db/schema.js'

/**
 * The commit log: one row per committed unit of work, written by the commit itself. Only its
 * newest rows are needed: an export records the last commit it contains.
 */
const COMMIT_LOG_KEEP = 10_000

/** The commit's last statement, in its transaction; `stateVersion` is evaluated there too. */
export async function recordCommit (transaction: Transaction<DB>, actor: string | null, stateVersion: Expression<number> | null): Promise<void> {
  await transaction.insertInto('commit_log').values({ at: new Date().toISOString(), actor, state_version: stateVersion }).execute()
}

/** The newest commit `db` sees, 0 for none: read first in a snapshot, the last commit it contains. */
export async function lastCommit (db: Kysely<DB>): Promise<number> {
  const last = await db.selectFrom('commit_log').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst()
  return Number(last?.id ?? 0)
}

/** An imported site goes on numbering its commits after the last one its export contained. */
export async function recordImportedCommit (transaction: Transaction<DB>, id: number): Promise<void> {
  await transaction.insertInto('commit_log').values({ id, at: new Date().toISOString(), actor: 'import' }).execute()
}

/** Drops all but about the newest {@link COMMIT_LOG_KEEP} rows. */
async function pruneCommitLog (db: Kysely<DB>): Promise<void> {
  const newest = await lastCommit(db)
  if (newest > 0) await db.deleteFrom('commit_log').where('id', '<', newest - COMMIT_LOG_KEEP).execute()
}

/** Prunes the log every `everyMs` (a timer that keeps no process alive); returns the function that stops it. */
export function pruneCommitLogEvery (db: Kysely<DB>, everyMs: number, onError: (err: unknown) => void, readOnly: () => boolean = () => false): () => void {
  const timer = setInterval(() => {
    // A standby takes no writes (its log is the primary's, replicated).
    if (!readOnly()) pruneCommitLog(db).catch(onError)
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}
