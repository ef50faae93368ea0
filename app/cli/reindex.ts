import cliProgress from 'cli-progress'
import { buildApp } from '../app.js'
import { findPrincipal } from '../auth/authenticate.js'
import { principalFor, type Principal } from '../auth/principal.js'
import type { Config } from '../config.js'
import { openDatabase } from '../db/database.js'
import { SCHEDULER } from '../maintenance/index.js'
import { FINISHED_STATES, type Task } from '../tasks/tasks.js'
import { CommandError, println, type CliIo } from './io.js'

/** Who a reindex from the command line runs as, when --as is not given. */
const COMMAND_LINE: Principal = principalFor({ name: 'cli', role: 'manager' })

/**
 * Runs a catalog rebuild from the command line: the task runs in this process (an instance
 * of the site, registered like the others) and its progress is shown as a bar on a terminal,
 * or as plain lines otherwise. Interrupted, the task resumes on the next instance that starts.
 */
export async function runReindex (config: Config, io: CliIo, as: string | undefined): Promise<number> {
  const database = await openDatabase(config.database)
  const app = await buildApp({ config, database })
  await app.ready()
  try {
    const principal = await resolvePrincipal(app.maintenance.state.maintainer, database, config, as)
    const task = await app.tasks.start('reindex', principal)
    println(io.stderr, `reindex task ${task.id} started as ${principal.name}`)
    const last = await follow(app.tasks.get.bind(app.tasks), task.id, io)
    if (last.state !== 'done') throw new CommandError(`the reindex ${last.state}${last.error ? `: ${last.error}` : ''}`)
    println(io.stdout, `reindexed ${last.done} documents in ${last.batches} batches (${last.conflicts} conflicts, ${last.retries} retries)`)
    return 0
  } finally {
    await app.close()
  }
}

async function resolvePrincipal (maintainer: string | null, database: Awaited<ReturnType<typeof openDatabase>>, config: Config, as: string | undefined): Promise<Principal> {
  const name = as ?? maintainer
  if (name === undefined || name === null) return COMMAND_LINE
  const principal = await findPrincipal(database.writer, config.accessFile, name)
  // A scheduled window's maintainer is the scheduler, not a user: the reindex runs as it.
  if (principal === undefined && as === undefined && name === SCHEDULER.name) return principalFor({ name, role: 'manager' })
  if (principal === undefined) throw new CommandError(`there is no user or emergency user named ${name}`)
  // As on the web, only managers and the emergency user start tasks.
  if (!principal.canManage) throw new CommandError(`${name} is a member: only managers and the emergency user may start a reindex`)
  return principal
}

async function follow (get: (id: number) => Promise<Task | undefined>, id: number, io: CliIo): Promise<Task> {
  const tty = (io.stderr as NodeJS.WriteStream).isTTY === true
  const bar = tty
    ? new cliProgress.SingleBar({
      stream: io.stderr as NodeJS.WriteStream,
      format: 'Reindex |{bar}| {percentage}% | {value}/{total} documents | {speed}/s | ETA {eta_formatted} | {state}, {conflicts} conflicts',
      hideCursor: true,
    }, cliProgress.Presets.shades_classic)
    : undefined
  const started = Date.now()
  let lastLine = 0
  for (;;) {
    const task = await get(id)
    if (task === undefined) throw new CommandError(`task ${id} disappeared`)
    const seconds = (Date.now() - started) / 1000
    const speed = seconds > 0 ? Math.round(task.done / seconds) : 0
    if (bar !== undefined) {
      if (bar.getTotal() !== task.total || !bar.isActive) {
        if (!bar.isActive) bar.start(task.total, task.done, { speed, state: task.state, conflicts: task.conflicts })
        else bar.setTotal(task.total)
      }
      bar.update(task.done, { speed, state: task.state, conflicts: task.conflicts })
    } else if (Date.now() - lastLine >= 1000 || FINISHED_STATES.includes(task.state)) {
      lastLine = Date.now()
      const percent = task.total > 0 ? Math.floor(task.done * 100 / task.total) : 0
      const left = speed > 0 && task.state === 'running' ? `, about ${Math.ceil((task.total - task.done) / speed)} s left` : ''
      println(io.stderr, `reindex: ${task.done}/${task.total} (${percent}%) ${task.state}, ${speed}/s${left}, ${task.conflicts} conflicts`)
    }
    if (FINISHED_STATES.includes(task.state)) {
      bar?.stop()
      return task
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}
