import type { Kysely, Selectable } from 'kysely'
import { principalFor, type Principal } from '../auth/principal.js'
import type { DB, TaskState, TaskTable } from '../db/schema.js'

export type TaskKind = 'reindex' | 'export'

export interface Task {
  id: number
  kind: TaskKind
  state: TaskState
  done: number
  total: number
  checkpoint: unknown
  startedBy: Principal
  startedAt: string
  heartbeatAt: string | null
  owner: string | null
  finishedAt: string | null
  error: string | null
  batches: number
  conflicts: number
  retries: number
  result: Record<string, unknown> | null
}

/** Tasks still to be run (or resumed); `cancelling` ones still need their runner to stop. */
export const ACTIVE_STATES: readonly TaskState[] = ['queued', 'running', 'paused', 'cancelling']
export const FINISHED_STATES: readonly TaskState[] = ['done', 'failed', 'cancelled']

function toTask (row: Selectable<TaskTable>): Task {
  return {
    id: row.id,
    kind: row.kind as TaskKind,
    state: row.state,
    done: row.done,
    total: row.total,
    checkpoint: row.checkpoint === null ? null : JSON.parse(row.checkpoint),
    startedBy: principalFor({ name: row.started_by, role: row.started_by_role as Principal['role'] }),
    startedAt: row.started_at,
    heartbeatAt: row.heartbeat_at,
    owner: row.owner,
    finishedAt: row.finished_at,
    error: row.error,
    batches: row.batches,
    conflicts: row.conflicts,
    retries: row.retries,
    result: row.result === null ? null : JSON.parse(row.result),
  }
}

/** What `GET /api/tasks/:id` answers (PRODUCT §4.4), with the reindex counters besides. */
export function taskJson (task: Task) {
  return {
    id: task.id,
    kind: task.kind,
    state: task.state,
    done: task.done,
    total: task.total,
    startedAt: task.startedAt,
    finishedAt: task.finishedAt,
    error: task.error,
    startedBy: task.startedBy.name,
    batches: task.batches,
    conflicts: task.conflicts,
    retries: task.retries,
  }
}

export async function findTask (db: Kysely<DB>, id: number): Promise<Task | undefined> {
  const row = await db.selectFrom('task').selectAll().where('id', '=', id).executeTakeFirst()
  return row && toTask(row)
}

export async function listTasks (db: Kysely<DB>, limit = 50): Promise<Task[]> {
  const rows = await db.selectFrom('task').selectAll().orderBy('id', 'desc').limit(limit).execute()
  return rows.map(toTask)
}

export async function insertTask (db: Kysely<DB>, kind: TaskKind, principal: Principal): Promise<Task> {
  const row = await db.insertInto('task').values({
    kind,
    state: 'queued',
    done: 0,
    total: 0,
    started_by: principal.name,
    started_by_role: principal.role,
    started_at: new Date().toISOString(),
    batches: 0,
    conflicts: 0,
    retries: 0,
  }).returningAll().executeTakeFirstOrThrow()
  return toTask(row)
}

/**
 * Takes a task for this instance if nobody runs it, or if its runner's heartbeat is older
 * than `staleBefore` (that instance died). A compare-and-set: one instance wins.
 */
export async function claimTask (db: Kysely<DB>, id: number, owner: string, staleBefore: string): Promise<Task | undefined> {
  const now = new Date().toISOString()
  const result = await db.updateTable('task')
    .set({ owner, heartbeat_at: now })
    .where('id', '=', id)
    .where('state', 'in', ACTIVE_STATES)
    .where((eb) => eb.or([eb('owner', 'is', null), eb('heartbeat_at', '<', staleBefore), eb('owner', '=', owner)]))
    .executeTakeFirst()
  if (result.numUpdatedRows === 0n) return undefined
  return findTask(db, id)
}

/**
 * Tasks that need a runner: unowned, owned by an instance that stopped heartbeating, or owned by
 * `owner` itself (the caller skips those it is running). Instance names are unique in a cluster,
 * so a task that carries this instance's name and does not run here has no runner.
 */
export async function claimableTaskIds (db: Kysely<DB>, staleBefore: string, owner: string): Promise<number[]> {
  const rows = await db.selectFrom('task').select('id')
    .where('state', 'in', ACTIVE_STATES)
    .where((eb) => eb.or([eb('owner', 'is', null), eb('heartbeat_at', '<', staleBefore), eb('owner', '=', owner)]))
    .orderBy('id')
    .execute()
  return rows.map((row) => row.id)
}

/** Keeps the claim alive; false when another instance has taken the task over. */
export async function heartbeatTask (db: Kysely<DB>, id: number, owner: string): Promise<boolean> {
  const result = await db.updateTable('task').set({ heartbeat_at: new Date().toISOString() })
    .where('id', '=', id).where('owner', '=', owner).executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export type TaskUpdate = Partial<Pick<TaskTable, 'state' | 'done' | 'total' | 'batches' | 'conflicts' | 'retries' | 'error' | 'finished_at'>> & {
  checkpoint?: unknown
  result?: Record<string, unknown>
}

/** Writes progress as the owner only; false when the task is no longer ours. */
export async function updateTask (db: Kysely<DB>, id: number, owner: string, update: TaskUpdate): Promise<boolean> {
  const { checkpoint, result, ...columns } = update
  const result_ = await db.updateTable('task')
    .set({
      ...columns,
      ...(checkpoint === undefined ? {} : { checkpoint: JSON.stringify(checkpoint) }),
      ...(result === undefined ? {} : { result: JSON.stringify(result) }),
      heartbeat_at: new Date().toISOString(),
    })
    .where('id', '=', id).where('owner', '=', owner)
    .executeTakeFirst()
  return result_.numUpdatedRows > 0n
}

/** Gives up this instance's claim on its unfinished tasks, so that any instance resumes them. */
export async function releaseTasks (db: Kysely<DB>, owner: string): Promise<void> {
  await db.updateTable('task').set({ owner: null }).where('owner', '=', owner).where('state', 'in', ACTIVE_STATES).execute()
}

/** Asks a task to stop; its runner sees it before the next batch. Returns the task as it is then. */
export async function requestCancel (db: Kysely<DB>, id: number): Promise<Task | undefined> {
  await db.updateTable('task').set({ state: 'cancelling' }).where('id', '=', id).where('state', 'in', ['queued', 'running', 'paused']).execute()
  // A queued task nobody runs yet is cancelled at once.
  await db.updateTable('task').set({ state: 'cancelled', finished_at: new Date().toISOString() })
    .where('id', '=', id).where('state', '=', 'cancelling').where('owner', 'is', null).execute()
  return findTask(db, id)
}
