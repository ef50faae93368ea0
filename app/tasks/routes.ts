import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import path from 'node:path'
import { fastifySSE } from '@fastify/sse'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { signedIn } from '../auth/plugin.js'
import { MAX_INTEGER } from '../db/schema.js'
import { NotFoundError } from '../errors.js'
import { exportsDir } from './export-task.js'
import { FINISHED_STATES, taskJson, type Task, type TaskKind } from './tasks.js'

declare module '../web/view.js' {
  interface Pages {
    'manage-tasks': { tasks: Task[] }
    'manage-task': { task: Task }
  }
}

interface IdParams { id: string }

function idOf (request: FastifyRequest<{ Params: IdParams }>): number {
  const id = Number(request.params.id)
  if (!Number.isInteger(id) || id < 1 || id > MAX_INTEGER) throw new NotFoundError(`There is no task ${request.params.id}`)
  return id
}

/** Starting, watching and cancelling tasks: the control panel pages and the JSON API (managers). */
const taskRoutes: FastifyPluginAsync = async function taskRoutes (fastify) {
  fastify.addHook('preHandler', fastify.requireManager)
  // The maintenance routes register @fastify/sse in their own (encapsulated) context, so its
  // route hook never sees the progress stream below: without this, `reply.sse` is undefined there.
  if (!fastify.hasReplyDecorator('sse')) await fastify.register(fastifySSE, { heartbeatInterval: 15_000 })
  const tasks = fastify.tasks

  async function taskOr404 (request: FastifyRequest<{ Params: IdParams }>): Promise<Task> {
    const task = await tasks.get(idOf(request))
    if (task === undefined) throw new NotFoundError(`There is no task ${request.params.id}`)
    return task
  }

  fastify.get('/manage/tasks', async function tasksPage (_request, reply) {
    return reply.render('manage-tasks', { title: 'Tasks', tasks: await tasks.list() })
  })

  for (const kind of ['reindex', 'export'] as TaskKind[]) {
    fastify.post(`/manage/tasks/${kind}`, async function startFromPanel (request, reply) {
      const task = await tasks.start(kind, signedIn(request))
      return reply.seeOther(`/manage/tasks/${task.id}`)
    })
    fastify.post(`/api/tasks/${kind}`, async function startFromApi (request, reply) {
      const task = await tasks.start(kind, signedIn(request))
      reply.code(202).header('location', `/api/tasks/${task.id}`)
      return { id: task.id }
    })
  }

  fastify.get<{ Params: IdParams }>('/manage/tasks/:id', async function taskPage (request, reply) {
    const task = await taskOr404(request)
    return reply.render('manage-task', { title: `Task ${task.id}: ${task.kind}`, task })
  })

  fastify.post<{ Params: IdParams }>('/manage/tasks/:id/cancel', async function cancelFromPanel (request, reply) {
    await taskOr404(request)
    await tasks.cancel(idOf(request))
    return reply.seeOther(`/manage/tasks/${request.params.id}`)
  })

  fastify.get<{ Params: IdParams }>('/manage/tasks/:id/download', { config: { unitOfWork: false } }, async function download (request, reply) {
    const task = await taskOr404(request)
    const file = task.kind === 'export' && task.state === 'done' ? task.result?.file : undefined
    if (typeof file !== 'string') throw new NotFoundError(`Task ${task.id} has no file to download`)
    const full = path.join(exportsDir(fastify.config.dataDir), path.basename(file))
    const size = (await stat(full).catch(() => undefined))?.size
    if (size === undefined) throw new NotFoundError(`The file of task ${task.id} is gone`)
    reply.header('content-type', 'application/x-ndjson').header('content-length', size)
      .header('content-disposition', `attachment; filename="${path.basename(file)}"`)
    return reply.send(createReadStream(full))
  })

  fastify.get<{ Params: IdParams }>('/api/tasks/:id', async function readTask (request) {
    return taskJson(await taskOr404(request))
  })

  fastify.post<{ Params: IdParams }>('/api/tasks/:id/cancel', async function cancelFromApi (request) {
    await taskOr404(request)
    return taskJson((await tasks.cancel(idOf(request)))!)
  })

  // Progress as server-sent events, wherever the task runs: read from the database twice a second.
  // No HEAD route, as for the maintenance events: a HEAD answer of a running task would never end.
  const streams = new Set<() => void>()
  fastify.get<{ Params: IdParams }>('/api/tasks/:id/events', { sse: 'only', exposeHeadRoute: false }, async function taskEvents (request, reply) {
    const first = await taskOr404(request)
    fastify.maintenance.untrack(request)
    const sse = reply.sse
    sse.keepAlive()
    let last = ''
    const send = async (task: Task): Promise<boolean> => {
      const data = taskJson(task)
      const text = JSON.stringify(data)
      if (text !== last) {
        last = text
        await sse.send({ event: 'progress', data: { ...data, at: new Date().toISOString() } })
      }
      return FINISHED_STATES.includes(task.state)
    }
    if (await send(first)) {
      sse.close()
      return
    }
    const close = () => sse.close()
    const timer = setInterval(() => {
      tasks.get(first.id)
        .then(async (task) => { if (task === undefined || await send(task)) close() })
        .catch(close)
    }, 500)
    streams.add(close)
    sse.onClose(() => {
      clearInterval(timer)
      streams.delete(close)
    })
  })
  fastify.addHook('preClose', async function closeTaskStreams () {
    for (const close of streams) close()
  })
}

export default taskRoutes
