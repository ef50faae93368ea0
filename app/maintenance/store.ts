import { SqliteAdapter, sql, type Expression, type Generated, type Kysely, type Selectable, type SelectQueryBuilder, type Transaction } from 'kysely'
import type { Channel, ChangeDecision, MaintenanceState, Mode } from './state.js'

/** The plugin's tables; an application's Kysely `DB` type includes them (see migration.ts). */
export interface MaintenanceTables {
  maintenance_state: {
    id: number
    mode: Mode
    maintainer: string | null
    reason: string | null
    since: string
    until: string | null
    version: number
    changed_by: string | null
    changed_at: string
  }
  maintenance_log: {
    id: Generated<number>
    at: string
    actor: string
    channel: Channel
    instance: string
    from_mode: Mode
    to_mode: string
    reason: string | null
    until: string | null
    expected_version: number
    new_version: number | null
    outcome: 'applied' | 'refused'
    detail: string | null
  }
  maintenance_window: {
    id: Generated<number>
    mode: Mode
    reason: string | null
    starts_at: string
    ends_at: string
    created_by: string
    created_at: string
    state: WindowState
    /** The state version the scheduler set at the start; the end only undoes that version. */
    started_version: number | null
    note: string | null
  }
  maintenance_instance: {
    id: string
    address: string | null
    started_at: string
    heartbeat_at: string
    state_version: number
    requests_in_flight: number
    writes_in_flight: number
  }
}

export type WindowState = 'scheduled' | 'active' | 'done' | 'cancelled' | 'skipped'

/** A scheduled maintenance window: the scheduler switches at its start and back at its end. */
export interface MaintenanceWindow {
  id: number
  mode: Mode
  reason: string | null
  startsAt: string
  endsAt: string
  createdBy: string
  createdAt: string
  state: WindowState
  startedVersion: number | null
  note: string | null
}

/** What the scheduler does at a window's start or end, given the state it finds. */
export interface WindowSwitch {
  /** The change to make, or null to leave the state as it is. */
  change: { attempt: ChangeAttempt, decision: ChangeDecision } | null
  note: string | null
}

export interface LogEntry {
  id: number
  at: string
  actor: string
  channel: Channel
  instance: string
  fromMode: Mode
  toMode: string
  reason: string | null
  until: string | null
  expectedVersion: number
  newVersion: number | null
  outcome: 'applied' | 'refused'
  detail: string | null
}

/** Which audit entries to show: each field narrows it; `from` and `to` are ISO instants (`to` excluded). */
export interface LogFilter {
  actor?: string
  outcome?: LogEntry['outcome']
  channel?: Channel
  from?: string
  to?: string
  /** Entries newer than this id (for paging back towards the newest), oldest first before they are turned round. */
  afterId?: number
}

export interface InstanceRecord {
  id: string
  address: string | null
  startedAt: string
  heartbeatAt: string
  stateVersion: number
  requestsInFlight: number
  writesInFlight: number
}

export interface ChangeAttempt {
  actor: string
  channel: Channel
  instance: string
  toMode: string
  reason: string | null
  until: string | null
  expectedVersion: number
}

/**
 * Everything the plugin needs from a database. `transaction` is whatever the application's
 * unit of work hands to its in-transaction hook (a Kysely transaction for the built-in store).
 */
export interface MaintenanceStore {
  /** The state as committed now, never from a cache. */
  read (): Promise<MaintenanceState>
  /** The state inside a commit's own transaction, held against a concurrent change until it ends. */
  readInTransaction (transaction: unknown): Promise<MaintenanceState>
  /**
   * Optional: a query expression for the unit of work's commit record that evaluates to the
   * state version in `transaction`, and holds it like {@link readInTransaction} until the end.
   */
  versionStamp? (transaction: unknown): Expression<number>
  /**
   * Reads the state with a write lock, asks `decide`, stores the new state if applied, and
   * writes the attempt to the audit log either way; all in one transaction.
   */
  change (attempt: ChangeAttempt, decide: (current: MaintenanceState) => ChangeDecision): Promise<{ previous: MaintenanceState, decision: ChangeDecision }>
  /**
   * A scheduled switch: in one transaction, claims the window (`from` → `to`, a compare-and-set
   * so that one instance wins), then changes the state like {@link change} unless `decide`
   * returns null. Returns undefined when another instance claimed the window first.
   */
  switchForWindow (windowId: number, from: WindowState, to: WindowState, plan: (current: MaintenanceState) => WindowSwitch): Promise<{ previous: MaintenanceState, decision: ChangeDecision | null } | undefined>
  windows (options: { from?: string, states?: WindowState[], limit?: number }): Promise<MaintenanceWindow[]>
  scheduleWindow (window: Pick<MaintenanceWindow, 'mode' | 'reason' | 'startsAt' | 'endsAt' | 'createdBy'>): Promise<MaintenanceWindow>
  /** Cancels a window that has not started; false when it had. */
  cancelWindow (id: number): Promise<boolean>
  /** Audit entries, newest first: older than `beforeId`, narrowed by `filter`. */
  log (limit: number, beforeId?: number, filter?: LogFilter): Promise<LogEntry[]>
  /** How many entries `filter` lets through (paging keys aside). */
  countLog (filter?: LogFilter): Promise<number>
  /** Everyone who appears in the log, by name, for a filter's choices. */
  logActors (): Promise<string[]>
  heartbeat (instance: InstanceRecord, dropOlderThan: string): Promise<void>
  instances (): Promise<InstanceRecord[]>
  removeInstance (id: string): Promise<void>
}

/** PostgreSQL channel on which every committed state change is announced (payload: the version). */
export const NOTIFY_CHANNEL = 'quiesce_maintenance'

type StateRow = MaintenanceTables['maintenance_state']

function toWindow (row: Selectable<MaintenanceTables['maintenance_window']>): MaintenanceWindow {
  return {
    id: row.id,
    mode: row.mode,
    reason: row.reason,
    startsAt: row.starts_at,
    endsAt: row.ends_at,
    createdBy: row.created_by,
    createdAt: row.created_at,
    state: row.state,
    startedVersion: row.started_version,
    note: row.note,
  }
}

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

/** The built-in store over Kysely, for SQLite and PostgreSQL alike; `database` must include {@link MaintenanceTables}. */
export function kyselyMaintenanceStore<T extends MaintenanceTables> (database: Kysely<T>): MaintenanceStore {
  const db = database as unknown as Kysely<MaintenanceTables>
  const postgres = !(db.getExecutor().adapter instanceof SqliteAdapter)

  async function readState (executor: Kysely<MaintenanceTables>, lock: 'share' | 'update' | null): Promise<MaintenanceState> {
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

  async function changeIn (transaction: Transaction<MaintenanceTables>, attempt: ChangeAttempt, decide: (current: MaintenanceState) => ChangeDecision) {
    const previous = await readState(transaction, 'update')
    const decision = decide(previous)
    const now = decision.outcome === 'applied' ? decision.state.changedAt : new Date().toISOString()
    if (decision.outcome === 'applied') {
      const next = decision.state
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
    return { previous, decision }
  }

  return {
    read: () => readState(db, null),

    readInTransaction: (transaction) => readState(transaction as Transaction<MaintenanceTables>, 'share'),

    // Its own share lock on PostgreSQL (SQLite serialises writers): the version is the one in
    // force when the commit lands even if a guard read the state without holding it.
    versionStamp (transaction) {
      const query = (transaction as Transaction<MaintenanceTables>).selectFrom('maintenance_state').select('version').where('id', '=', 1)
      return (postgres ? query.forShare() : query).$asScalar()
    },

    async change (attempt, decide) {
      return db.transaction().execute((transaction) => changeIn(transaction, attempt, decide))
    },

    async switchForWindow (windowId, from, to, plan) {
      return db.transaction().execute(async (transaction) => {
        const claimed = await transaction.updateTable('maintenance_window').set({ state: to })
          .where('id', '=', windowId).where('state', '=', from).executeTakeFirst()
        if (claimed.numUpdatedRows === 0n) return undefined
        const current = await readState(transaction, 'update')
        const { change, note } = plan(current)
        const outcome = change === null
          ? { previous: current, decision: null }
          : await changeIn(transaction, change.attempt, () => change.decision)
        const decision = outcome.decision
        await transaction.updateTable('maintenance_window').set({
          ...(decision?.outcome === 'applied' && to === 'active' ? { started_version: decision.state.version } : {}),
          ...(decision?.outcome === 'refused' ? { state: 'skipped' as const } : {}),
          note,
        }).where('id', '=', windowId).execute()
        return outcome
      })
    },

    async windows ({ from, states, limit = 50 }) {
      let query = db.selectFrom('maintenance_window').selectAll().orderBy('starts_at').orderBy('id').limit(limit)
      if (from !== undefined) query = query.where('ends_at', '>', from)
      if (states !== undefined) query = query.where('state', 'in', states)
      return (await query.execute()).map(toWindow)
    },

    async scheduleWindow (window) {
      const row = await db.insertInto('maintenance_window').values({
        mode: window.mode,
        reason: window.reason,
        starts_at: window.startsAt,
        ends_at: window.endsAt,
        created_by: window.createdBy,
        created_at: new Date().toISOString(),
        state: 'scheduled',
        started_version: null,
        note: null,
      }).returningAll().executeTakeFirstOrThrow()
      return toWindow(row)
    },

    async cancelWindow (id) {
      const result = await db.updateTable('maintenance_window').set({ state: 'cancelled' })
        .where('id', '=', id).where('state', '=', 'scheduled').executeTakeFirst()
      return result.numUpdatedRows > 0n
    },

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

    async heartbeat (instance, dropOlderThan) {
      const row = {
        id: instance.id,
        address: instance.address,
        started_at: instance.startedAt,
        heartbeat_at: instance.heartbeatAt,
        state_version: instance.stateVersion,
        requests_in_flight: instance.requestsInFlight,
        writes_in_flight: instance.writesInFlight,
      }
      await db.insertInto('maintenance_instance').values(row)
        .onConflict((oc) => oc.column('id').doUpdateSet({ ...row, id: undefined }))
        .execute()
      await db.deleteFrom('maintenance_instance').where('heartbeat_at', '<', dropOlderThan).execute()
    },

    async instances () {
      const rows = await db.selectFrom('maintenance_instance').selectAll().orderBy('id').execute()
      return rows.map((row) => ({
        id: row.id,
        address: row.address,
        startedAt: row.started_at,
        heartbeatAt: row.heartbeat_at,
        stateVersion: row.state_version,
        requestsInFlight: row.requests_in_flight,
        writesInFlight: row.writes_in_flight,
      }))
    },

    async removeInstance (id) {
      await db.deleteFrom('maintenance_instance').where('id', '=', id).execute()
    },
  }
}
