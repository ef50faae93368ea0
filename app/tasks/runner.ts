import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Principal } from '../auth/principal.js'
import type { Catalog } from '../content/catalog.js'
import type { Database } from '../db/database.js'
import { isDatabaseUnavailable } from '../db/errors.js'
import type { MaintenanceController } from '../maintenance/index.js'
import type { UnitOfWorkEngine } from '../unit-of-work/unit-of-work.js'
import { claimableTaskIds, claimTask, findTask, heartbeatTask, releaseTasks, updateTask, type Task, type TaskKind, type TaskUpdate } from './tasks.js'

/** What a running task may use. */
interface TaskEnvironment {
  database: Database
  engine: UnitOfWorkEngine<Principal | null>
  catalog: Catalog
  maintenance: MaintenanceController
  /** This instance: the owner of the tasks it runs. */
  owner: string
  /** Documents per reindex batch while the site is read-only for everyone but the maintainer (see reindex.ts). */
  readOnlyReindexBatch: number
  dataDir: string
  log: FastifyBaseLogger
}

/** One run of one task on this instance. */
export interface TaskRun {
  readonly task: Task
  readonly env: TaskEnvironment
  /** Aborted when this instance stops, or loses the task to another instance. */
  readonly signal: AbortSignal
  /** Persists progress (as the owner); throws TaskLostError when another instance took over. */
  save (update: TaskUpdate): Promise<void>
  /**
   * Between two steps: throws TaskCancelledError when someone asked to cancel, and waits (the
   * task shown as paused) while the person who started it may not write in this mode.
   */
  checkpoint (): Promise<void>
}

export type TaskHandler = (run: TaskRun) => Promise<Record<string, unknown> | undefined>

class TaskCancelledError extends Error {
  override name = 'TaskCancelledError'
}

export class TaskLostError extends Error {
  override name = 'TaskLostError'
}

export interface TaskRunnerOptions {
  heartbeatMs?: number
  /** A task whose heartbeat is older than this is taken over. */
  staleAfterMs?: number
  pollMs?: number
  /** Tasks this instance runs at once. */
  concurrency?: number
  /** Documents per reindex batch in concurrent and exclusive mode (default {@link READ_ONLY_REINDEX_BATCH}). */
  readOnlyReindexBatch?: number
}

/**
 * Runs tasks on this instance: claims queued ones, the ones whose runner died (stale
 * heartbeat), and the ones its own name owns but it does not run (its previous process was
 * killed, or a database outage interrupted them), runs them with a heartbeat, and releases them
 * on shutdown so that another instance (or this one after a restart) resumes them from their checkpoint.
 */
export class TaskRunner {
  readonly #env: TaskEnvironment
  readonly #handlers: Record<TaskKind, TaskHandler>
  readonly #heartbeatMs: number
  readonly #staleAfterMs: number
  readonly #pollMs: number
  readonly #concurrency: number
  readonly #running = new Map<number, { abort: AbortController, done: Promise<void> }>()
  #timer: NodeJS.Timeout | undefined
  #ticking: Promise<void> | undefined
  #stopped = false

  constructor (env: TaskEnvironment, handlers: Record<TaskKind, TaskHandler>, options: TaskRunnerOptions = {}) {
    this.#env = env
    this.#handlers = handlers
    this.#heartbeatMs = options.heartbeatMs ?? 2000
    this.#staleAfterMs = options.staleAfterMs ?? 10_000
    this.#pollMs = options.pollMs ?? 1000
    this.#concurrency = options.concurrency ?? 2
  }

  start (): void {
    this.#timer = setInterval(() => this.poke(), this.#pollMs)
    this.#timer.unref()
    this.poke()
  }

  /** Looks for work now (after a task was queued here, or one finished). */
  poke (): void {
    if (this.#stopped || this.#ticking !== undefined) return
    this.#ticking = this.#tick()
      .catch((err: unknown) => this.#env.log.warn({ err }, 'could not look for tasks'))
      .finally(() => { this.#ticking = undefined })
  }

  async #tick (): Promise<void> {
    if (this.#running.size >= this.#concurrency) return
    const staleBefore = new Date(Date.now() - this.#staleAfterMs).toISOString()
    for (const id of await claimableTaskIds(this.#env.database.writer, staleBefore, this.#env.owner)) {
      if (this.#stopped || this.#running.size >= this.#concurrency) return
      if (this.#running.has(id)) continue
      const task = await claimTask(this.#env.database.writer, id, this.#env.owner, staleBefore)
      if (task !== undefined) this.#run(task)
    }
  }

  #run (task: Task): void {
    const abort = new AbortController()
    const done = this.#execute(task, abort)
      .catch((err: unknown) => this.#env.log.error({ err, task: task.id }, 'task runner failed'))
      .finally(() => {
        this.#running.delete(task.id)
        this.poke()
      })
    this.#running.set(task.id, { abort, done })
  }

  async #execute (claimed: Task, abort: AbortController): Promise<void> {
    const { database, owner, log } = this.#env
    const db = database.writer
    const heartbeat = setInterval(() => {
      heartbeatTask(db, claimed.id, owner).then((ours) => {
        if (!ours) abort.abort(new TaskLostError(`task ${claimed.id} was taken over by another instance`))
      }, (err: unknown) => log.warn({ err, task: claimed.id }, 'task heartbeat failed'))
    }, this.#heartbeatMs)
    heartbeat.unref()
    const finish = async (update: TaskUpdate) => { await updateTask(db, claimed.id, owner, { ...update, finished_at: new Date().toISOString() }) }
    try {
      if (claimed.state === 'cancelling') return await finish({ state: 'cancelled' })
      if (claimed.state !== 'running') await updateTask(db, claimed.id, owner, { state: 'running' })
      log.info({ task: claimed.id, kind: claimed.kind, resumedFrom: claimed.checkpoint }, 'task started')
      const run = this.#makeRun({ ...claimed, state: 'running' }, abort.signal)
      const result = await this.#handlers[claimed.kind](run)
      await finish({ state: 'done', ...(result === undefined ? {} : { result }) })
      log.info({ task: claimed.id, kind: claimed.kind }, 'task done')
    } catch (err) {
      if (err instanceof TaskCancelledError) {
        await finish({ state: 'cancelled' })
      } else if (abort.signal.aborted) {
        // This instance stops (the task is released and resumed elsewhere) or lost the task.
        log.info({ task: claimed.id, reason: String(abort.signal.reason) }, 'task interrupted')
      } else if (isDatabaseUnavailable(err)) {
        // Not the task's fault: it stays ours, and the next look for work once the database is
        // back takes it up again from its checkpoint.
        log.warn({ err, task: claimed.id }, 'task interrupted: the database is unavailable')
      } else {
        log.warn({ err, task: claimed.id }, 'task failed')
        await finish({ state: 'failed', error: (err as Error).message })
      }
    } finally {
      clearInterval(heartbeat)
    }
  }

  #makeRun (task: Task, signal: AbortSignal): TaskRun {
    const env = this.#env
    const db = env.database.writer
    const principal = task.startedBy
    return {
      task,
      env,
      signal,
      async save (update) {
        if (!await updateTask(db, task.id, env.owner, update)) throw new TaskLostError(`task ${task.id} is no longer ours`)
      },
      async checkpoint () {
        // SQLite answers synchronously: without a turn of the event loop between two steps,
        // a long task would keep this instance from answering anyone until it ends.
        await yieldToEventLoop()
        signal.throwIfAborted()
        const current = await findTask(db, task.id)
        if (current === undefined || current.state === 'cancelling' || current.state === 'cancelled') throw new TaskCancelledError()
        if (env.maintenance.mayWrite(principal)) return
        // Started by someone who may not write now: wait for the site, shown as paused.
        await this.save({ state: 'paused' })
        env.log.info({ task: task.id, mode: env.maintenance.state.mode }, 'task paused for maintenance')
        while (!env.maintenance.mayWrite(principal)) {
          await waitForChange(env.maintenance, signal, 1000)
          const again = await findTask(db, task.id)
          if (again === undefined || again.state === 'cancelling') throw new TaskCancelledError()
        }
        await this.save({ state: 'running' })
        env.log.info({ task: task.id }, 'task resumed')
      },
    }
  }

  /**
   * Stops taking work, interrupts running tasks between two steps and releases them, so that
   * they resume from their checkpoint on the next instance that looks for work.
   */
  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    await this.#ticking
    for (const { abort } of this.#running.values()) abort.abort(new Error('the instance is stopping'))
    await Promise.allSettled([...this.#running.values()].map(({ done }) => done))
    try {
      await releaseTasks(this.#env.database.writer, this.#env.owner)
    } catch (err) {
      // Its heartbeat stops with this instance: another one takes the tasks over when they go stale.
      this.#env.log.warn({ err }, 'could not release the tasks of this instance')
    }
  }
}

/** Resolves on the next state this instance applies, after `timeoutMs`, or when aborted. */
function waitForChange (maintenance: MaintenanceController, signal: AbortSignal, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer)
      unsubscribe()
      signal.removeEventListener('abort', aborted)
    }
    const aborted = () => {
      done()
      reject(signal.reason)
    }
    const timer = setTimeout(() => { done(); resolve() }, timeoutMs)
    const unsubscribe = maintenance.subscribe(() => { done(); resolve() })
    signal.addEventListener('abort', aborted)
  })
}
