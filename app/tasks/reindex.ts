import { setTimeout as sleep } from 'node:timers/promises'
import { countDocuments, documentsAfter, documentVersions } from '../content/documents.js'
import { ConflictError, ExclusiveError, ReadOnlyError } from '../errors.js'
import type { TaskHandler, TaskRun } from './runner.js'
import { TaskLostError } from './runner.js'
import { updateTask } from './tasks.js'

export const REINDEX_BATCH = 100
/**
 * In concurrent and exclusive mode only the maintainer and the emergency user can change a
 * document: a batch rarely conflicts, and larger ones spend fewer round trips, each of which
 * waits its turn behind the requests of a loaded site (bench:reindex (c): 1.53 × idle with
 * batches of 100 on PostgreSQL, 1.30 with 500, 1.10 with 1,000).
 */
export const READ_ONLY_REINDEX_BATCH = 1000
/** A reindex that cannot land one batch in this many tries in a row gives up, and says why. */
const MAX_FAILED_BATCHES = 50

interface Checkpoint { lastId: number }

/**
 * Rebuilds the catalog from the documents, in batches of document ids ({@link REINDEX_BATCH},
 * or {@link READ_ONLY_REINDEX_BATCH} while the site is not in normal mode). Each batch is one unit
 * of work run as the person who started the task: it reads the batch, and its commit checks that
 * none of those documents changed meanwhile (a concurrent edit is a conflict, retried), replaces
 * the catalog entries of that id range, and records the progress in the same transaction. So the
 * checkpoint never runs ahead of the catalog, and a resumed task continues exactly after it.
 */
export const reindex: TaskHandler = async function reindex (run: TaskRun) {
  const { engine, catalog } = run.env
  const task = run.task
  let lastId = (task.checkpoint as Checkpoint | null)?.lastId ?? 0
  let { done, batches, conflicts, retries } = task
  const total = Math.max(done, done + await countDocuments(run.env.database.reader, lastId))
  await run.save({ total })

  for (let failedInARow = 0; ;) {
    await run.checkpoint()
    let attemptConflicts = 0
    // The batch counts as a write in flight of this instance (the control panel shows it).
    const untrackWrite = run.env.maintenance.trackWrite()
    try {
      const landed = await engine.run(task.startedBy, async (unitOfWork) => {
        const size = run.env.maintenance.state.mode === 'normal' ? REINDEX_BATCH : run.env.readOnlyReindexBatch
        const docs = await documentsAfter(unitOfWork.db, lastId, size)
        const to = docs.length === size ? docs.at(-1)!.id : undefined
        const next = { lastId: docs.at(-1)?.id ?? lastId }
        unitOfWork.stage(async (transaction) => {
          // The batch's range must hold exactly the documents read, at the versions read.
          // PostgreSQL: hold the checked rows until this commit, or an edit committing between
          // the check and the catalog writes would see its fresh entry overwritten with the old
          // text. (SQLite has one writer at a time: nothing can commit in between.)
          const now = await documentVersions(transaction, lastId, to, run.env.database.kind === 'postgres')
          if (now.length !== docs.length || now.some((row, i) => row.id !== docs[i]!.id || row.version !== docs[i]!.version)) {
            throw new ConflictError('documents of this batch changed while it was indexed')
          }
          await catalog.removeRange(transaction, lastId + 1, to)
          await catalog.insertMany(transaction, docs.map((doc) => ({ documentId: doc.id, slug: doc.slug, title: doc.title, body: doc.body })))
          const ours = await updateTask(transaction, task.id, run.env.owner, {
            done: done + docs.length,
            total: Math.max(total, done + docs.length),
            checkpoint: next,
            batches: batches + 1,
            conflicts: conflicts + attemptConflicts,
            retries: retries + attemptConflicts,
          })
          if (!ours) throw new TaskLostError(`task ${task.id} is no longer ours`)
        })
        return { count: docs.length, next, last: to === undefined }
      }, { signal: run.signal, onRetry: () => { attemptConflicts++ } })

      done += landed.count
      batches++
      conflicts += attemptConflicts
      retries += attemptConflicts
      lastId = landed.next.lastId
      failedInARow = 0
      if (landed.last) return { batches, conflicts, retries }
    } catch (err) {
      if (!(err instanceof ConflictError)) {
        // Refused by maintenance mode: wait at the next checkpoint (paused) and try again.
        if (err instanceof ReadOnlyError || err instanceof ExclusiveError) continue
        throw err
      }
      // Every attempt of this batch conflicted with concurrent edits; the engine retried all but the last.
      conflicts += attemptConflicts + 1
      retries += attemptConflicts
      const givingUp = ++failedInARow >= MAX_FAILED_BATCHES
      if (!givingUp) retries++
      await run.save({ conflicts, retries })
      if (givingUp) {
        throw new Error(`the catalog could not be rebuilt: concurrent edits conflicted with the same batch ${failedInARow} times in a row. Switch the site to Concurrent (read-only) mode and start the reindex again as its maintainer.`)
      }
      await sleep(Math.min(20 * failedInARow, 500), undefined, { signal: run.signal })
    } finally {
      untrackWrite()
    }
  }
}
