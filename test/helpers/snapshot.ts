import { sql } from 'kysely'
import type { Database } from '../../app/db/database.js'

/**
 * What a request could have written, as committed, in one cheap query: a fingerprint of the
 * site's data (documents; users, their password resets and the user log), of the maintenance
 * state and its windows, which tasks exist, and how many audit rows there are. Every write of
 * the site adds or removes a row or bumps a version (the optimistic concurrency of PRODUCT
 * §2.2), so each one changes a fingerprint. Left out on purpose: sessions, heartbeats and task
 * progress, which change on their own.
 */
export interface DataSnapshot {
  documents: string
  users: string
  state: string
  windows: string
  tasks: string
  audit: number
}

export async function dataSnapshot (database: Database): Promise<DataSnapshot> {
  const { rows } = await sql<Record<keyof DataSnapshot, string | number>>`
    select
      (select count(*) || ':' || coalesce(max(id), 0) || ':' || coalesce(sum(version), 0) || ':' || coalesce(sum(length(title) + length(body)), 0) from document) as documents,
      (select count(*) || ':' || coalesce(max(id), 0) || ':' || coalesce(sum(version), 0) || ':' || coalesce(sum(length(role)), 0) from app_user)
        || ':' || (select count(*) || ':' || coalesce(max(id), 0) from password_reset)
        || ':' || (select count(*) from user_log) as users,
      (select mode || ':' || version || ':' || coalesce(maintainer, '') || ':' || coalesce(reason, '') from maintenance_state) as state,
      (select count(*) || ':' || coalesce(max(id), 0) || ':' || sum(case when state = 'cancelled' then 1 else 0 end) from maintenance_window) as windows,
      (select count(*) || ':' || coalesce(max(id), 0) from task) as tasks,
      (select count(*) from maintenance_log) as audit`.execute(database.writer)
  const row = rows[0]!
  return {
    documents: String(row.documents),
    users: String(row.users),
    state: String(row.state),
    windows: String(row.windows),
    tasks: String(row.tasks),
    audit: Number(row.audit),
  }
}

/** The parts of `after` that differ from `before` (audit rows: the number added). */
export function snapshotChanges (before: DataSnapshot, after: DataSnapshot): string[] {
  const changed: string[] = []
  for (const key of ['documents', 'users', 'state', 'windows', 'tasks'] as const) {
    if (before[key] !== after[key]) changed.push(key)
  }
  if (after.audit !== before.audit) changed.push(`audit+${after.audit - before.audit}`)
  return changed
}
