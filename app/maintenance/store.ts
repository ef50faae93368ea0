import type { Expression, Generated } from 'kysely'
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
    /** JSON: what the instance says about itself (`describeInstance`), or null. */
    details: string | null
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
  /** What the instance says about itself (the `describeInstance` option: its database, say), or null. */
  details: Record<string, unknown> | null
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
   * Optional: {@link readInTransaction} as fixed SQL (no parameters) that a unit of work with the
   * `guardAtBegin` seam runs as its commit transaction's first statement, sent with the BEGIN
   * where the database allows, and `state(rows)`, the state from its rows.
   */
  stateAtBegin? (): { statement: string, state: (rows: readonly unknown[]) => MaintenanceState }
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
