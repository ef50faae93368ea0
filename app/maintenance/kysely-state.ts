import { sql, type Kysely, type Transaction } from 'kysely'
import type { ChangeDecision, MaintenanceState } from './state.js'
import { NOTIFY_CHANNEL, type ChangeAttempt, type MaintenanceStore, type MaintenanceTables } from './store.js'

type StateRow = MaintenanceTables['maintenance_state']

function toState (row: StateRow): MaintenanceState {
  return {
    mode: row.mode,
    maintainer: row.maintainer,
    reason: row.reason,
    since: row.since,
    until: row.until,
    version: row.version,
    changedBy: row.changed_by,
    changedAt: row.changed_at,
  }
}

async function readState (executor: Kysely<MaintenanceTables>, postgres: boolean, lock: 'share' | 'update' | null): Promise<MaintenanceState> {
  let query = executor.selectFrom('maintenance_state').selectAll().where('id', '=', 1)
  // SQLite serialises writers with BEGIN IMMEDIATE; PostgreSQL needs the row lock:
  // FOR SHARE lets commits run side by side but makes a state change wait for them (and
  // them for it), so no write lands after a switch that has been acknowledged.
  if (postgres && lock === 'share') query = query.forShare()
  if (postgres && lock === 'update') {
    // FOR UPDATE alone can wait without end: PostgreSQL grants FOR SHARE to commits that
    // begin while it waits, so under steady writes there was always one in the way. The table
    // lock queues their FOR SHARE (ROW SHARE) behind the change; plain reads go on.
    await sql`lock table maintenance_state in exclusive mode`.execute(executor)
    query = query.forUpdate()
  }
  const row = await query.executeTakeFirst()
  if (row === undefined) throw new Error('the maintenance state row is missing; run the migrations')
  return toState(row)
}

async function storeState (transaction: Transaction<MaintenanceTables>, postgres: boolean, next: MaintenanceState): Promise<void> {
  await transaction.updateTable('maintenance_state').set({
    mode: next.mode,
    maintainer: next.maintainer,
    reason: next.reason,
    since: next.since,
    until: next.until,
    version: next.version,
    changed_by: next.changedBy,
    changed_at: next.changedAt,
  }).where('id', '=', 1).execute()
  // Delivered to every listening instance when (and only if) this transaction commits.
  if (postgres) await sql`select pg_notify(${NOTIFY_CHANNEL}, ${String(next.version)})`.execute(transaction)
}

async function logAttempt (transaction: Transaction<MaintenanceTables>, attempt: ChangeAttempt, previous: MaintenanceState, decision: ChangeDecision): Promise<void> {
  const now = decision.outcome === 'applied' ? decision.state.changedAt : new Date().toISOString()
  await transaction.insertInto('maintenance_log').values({
    at: now,
    actor: attempt.actor,
    channel: attempt.channel,
    instance: attempt.instance,
    from_mode: previous.mode,
    to_mode: attempt.toMode,
    reason: attempt.reason,
    until: attempt.until,
    expected_version: attempt.expectedVersion,
    new_version: decision.outcome === 'applied' ? decision.state.version : null,
    outcome: decision.outcome,
    detail: decision.outcome === 'applied'
      ? (decision.takeoverFrom !== null ? `took over from ${decision.takeoverFrom}` : null)
      : decision.detail,
  }).execute()
}

async function changeIn (transaction: Transaction<MaintenanceTables>, postgres: boolean, attempt: ChangeAttempt, decide: (current: MaintenanceState) => ChangeDecision) {
  const previous = await readState(transaction, postgres, 'update')
  const decision = decide(previous)
  if (decision.outcome === 'applied') await storeState(transaction, postgres, decision.state)
  await logAttempt(transaction, attempt, previous, decision)
  return { previous, decision }
}

type StateQueries = Pick<MaintenanceStore, 'read' | 'readInTransaction' | 'versionStamp' | 'stateAtBegin' | 'change' | 'switchForWindow'>

/** The state row, its changes and their audit entries (and the window a scheduled switch claims). */
export function stateQueries (db: Kysely<MaintenanceTables>, postgres: boolean): StateQueries {
  // readInTransaction's query and lock, as text: a commit sends it with its BEGIN.
  const atBegin = {
    statement: `select * from maintenance_state where id = 1${postgres ? ' for share' : ''}`,
    state (rows: readonly unknown[]) {
      if (rows.length === 0) throw new Error('the maintenance state row is missing; run the migrations')
      return toState(rows[0] as StateRow)
    },
  }
  return {
    read: () => readState(db, postgres, null),

    readInTransaction: (transaction) => readState(transaction as Transaction<MaintenanceTables>, postgres, 'share'),

    stateAtBegin: () => atBegin,

    // Its own share lock on PostgreSQL (SQLite serialises writers): the version is the one in
    // force when the commit lands even if a guard read the state without holding it.
    versionStamp (transaction) {
      const query = (transaction as Transaction<MaintenanceTables>).selectFrom('maintenance_state').select('version').where('id', '=', 1)
      return (postgres ? query.forShare() : query).$asScalar()
    },

    async change (attempt, decide) {
      return db.transaction().execute((transaction) => changeIn(transaction, postgres, attempt, decide))
    },

    async switchForWindow (windowId, from, to, plan) {
      return db.transaction().execute(async (transaction) => {
        const claimed = await transaction.updateTable('maintenance_window').set({ state: to })
          .where('id', '=', windowId).where('state', '=', from).executeTakeFirst()
        if (claimed.numUpdatedRows === 0n) return undefined
        const current = await readState(transaction, postgres, 'update')
        const { change, note } = plan(current)
        const outcome = change === null
          ? { previous: current, decision: null }
          : await changeIn(transaction, postgres, change.attempt, () => change.decision)
        const decision = outcome.decision
        await transaction.updateTable('maintenance_window').set({
          ...(decision?.outcome === 'applied' && to === 'active' ? { started_version: decision.state.version } : {}),
          ...(decision?.outcome === 'refused' ? { state: 'skipped' as const } : {}),
          note,
        }).where('id', '=', windowId).execute()
        return outcome
      })
    },
  }
}
