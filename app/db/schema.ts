import type { Generated } from 'kysely'
import type { MaintenanceTables } from '../maintenance/store.js'

/**
 * The tables of a Quiesce site. Timestamps are ISO-8601 UTC strings on both databases, so
 * SQLite and PostgreSQL sort, compare and export them identically.
 */
/** The largest id, version or count a column holds on both databases (PostgreSQL's `integer`). */
export const MAX_INTEGER = 2_147_483_647

export interface DB extends MaintenanceTables {
  app_user: UserTable
  session: SessionTable
  document: DocumentTable
  document_count: DocumentCountTable
  task: TaskTable
  commit_log: CommitLogTable
  password_reset: PasswordResetTable
  user_log: UserLogTable
  sign_in_failure: SignInFailureTable
}

export type Role = 'member' | 'manager'

export interface UserTable {
  id: Generated<number>
  username: string
  password_hash: string
  role: Role
  version: number
  created_at: string
  updated_at: string
  /** Set while the user may not sign in; their sessions ended when it was set. */
  disabled_at: string | null
  disabled_by: string | null
}

export interface SessionTable {
  sid: string
  data: string
  expires_at: string
  /** The signed-in name, or null for a session without anyone signed in. */
  principal: string | null
}

export interface PasswordResetTable {
  id: Generated<number>
  user_id: number
  /** SHA-256 of the token in the link, base64url; the token itself is shown once and not stored. */
  token_hash: string
  created_by: string
  created_at: string
  expires_at: string
  used_at: string | null
}

export type UserAction = 'added' | 'role' | 'disabled' | 'enabled' | 'removed' | 'reset-link' | 'password-reset' | 'password'

export interface UserLogTable {
  id: Generated<number>
  at: string
  actor: string
  channel: 'web' | 'cli'
  /** The user acted on. */
  username: string
  action: UserAction
  detail: string | null
}

export interface DocumentTable {
  id: Generated<number>
  slug: string
  title: string
  body: string
  version: number
  created_by: string
  created_at: string
  updated_by: string
  updated_at: string
}

/** One row: how many documents there are, kept by triggers on `document`. */
export interface DocumentCountTable {
  id: number
  n: number
}

export type TaskState = 'queued' | 'running' | 'paused' | 'cancelling' | 'cancelled' | 'done' | 'failed'

export interface TaskTable {
  id: Generated<number>
  kind: string
  state: TaskState
  done: number
  total: number
  /** JSON: where a resumed task continues. */
  checkpoint: string | null
  started_by: string
  started_by_role: string
  started_at: string
  heartbeat_at: string | null
  /** The instance running it; another takes over once the heartbeat is stale. */
  owner: string | null
  finished_at: string | null
  error: string | null
  batches: number
  conflicts: number
  retries: number
  /** JSON: what the task produced (an export's file). */
  result: string | null
}

export interface CommitLogTable {
  id: Generated<number>
  at: string
  actor: string | null
  /** The maintenance state version the commit was applied under (null: no maintenance plugin, or older rows). */
  state_version: number | null
}

export interface SignInFailureTable {
  id: Generated<number>
  at: string
  /** The name as typed (made storable). */
  account: string
  address: string
  channel: 'form' | 'basic'
  instance: string
}
