import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Principal } from '../auth/principal.js'
import { exportTask } from './export-task.js'
import { READ_ONLY_REINDEX_BATCH, reindex } from './reindex.js'
import { TaskRunner, type TaskRunnerOptions } from './runner.js'
import { findTask, insertTask, listTasks, requestCancel, type Task, type TaskKind } from './tasks.js'

declare module 'fastify' {
  interface FastifyInstance {
    tasks: TaskService
  }
}

interface TaskService {
  /** Queues a task as `principal`; this instance (or another) picks it up at once. */
  start (kind: TaskKind, principal: Principal): Promise<Task>
  get (id: number): Promise<Task | undefined>
  list (limit?: number): Promise<Task[]>
  cancel (id: number): Promise<Task | undefined>
}

/**
 * Long-running maintenance work with persisted, resumable progress. Every instance runs a task
 * runner; a task belongs to the instance that claimed it while that instance heartbeats.
 */
const tasksPlugin: FastifyPluginAsync<TaskRunnerOptions> = async function tasksPlugin (fastify, options) {
  const readOnlyReindexBatch = options.readOnlyReindexBatch ?? READ_ONLY_REINDEX_BATCH
  if (!Number.isInteger(readOnlyReindexBatch) || readOnlyReindexBatch < 1) throw new Error(`readOnlyReindexBatch must be a whole number of documents, 1 or more, not ${readOnlyReindexBatch}`)
  const db = fastify.db.writer
  const runner = new TaskRunner({
    database: fastify.db,
    engine: fastify.unitOfWork,
    catalog: fastify.catalog,
    maintenance: fastify.maintenance,
    owner: fastify.config.instanceId,
    readOnlyReindexBatch,
    dataDir: fastify.config.dataDir,
    log: fastify.log,
  }, { reindex, export: exportTask }, options)

  fastify.decorate('tasks', {
    async start (kind, principal) {
      const task = await insertTask(db, kind, principal)
      runner.poke()
      return task
    },
    get: (id) => findTask(db, id),
    list: (limit) => listTasks(db, limit),
    cancel: (id) => requestCancel(db, id),
  } satisfies TaskService)

  // A standby takes no writes, so it runs no tasks until it is promoted.
  fastify.addHook('onReady', async function startTaskRunner () {
    if (fastify.db.standby) fastify.db.onPromoted(() => runner.start())
    else runner.start()
  })
  fastify.addHook('preClose', async function stopTaskRunner () {
    await runner.stop()
  })
}

export default fp(tasksPlugin, {
  fastify: '5.x',
  name: 'quiesce-tasks',
  dependencies: ['quiesce-db', 'quiesce-unit-of-work', 'quiesce-maintenance', 'quiesce-content'],
})
