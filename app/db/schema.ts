import type { Generated } from 'kysely'
import type { MaintenanceTables } from '../maintenance/store.js'

/**
 * The tables of a Quiesce site. Timestamps are ISO-8601 UTC strings on both databases, so
 * SQLite and PostgreSQL sort, compare and export them identically.
 */
export interface DB extends MaintenanceTables {
  app_user: UserTable
  session: SessionTable
  document: DocumentTable
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
}

export interface SessionTable {
  sid: string
  data: string
  expires_at: string
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
