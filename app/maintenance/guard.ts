import { refusalFor, StateUnavailableError } from './errors.js'
import type { CommitSeams } from './options.js'
import { mayWrite, type MaintenancePrincipal, type MaintenanceState } from './state.js'
import type { StateCache } from './state-cache.js'
import type { MaintenanceStore } from './store.js'

interface GuardOptions {
  store: MaintenanceStore
  cache: StateCache
  identify: (principal: unknown) => MaintenancePrincipal | null
}

/** A commit whose transaction could not read the state is refused, saying so. */
function unreadable (cause: unknown): Error {
  return new StateUnavailableError('The maintenance state cannot be read right now, so nothing can be saved; try again shortly', { cause })
}

/**
 * The commit guard, through the unit of work's seams: every commit is judged by the state as
 * read in its own transaction, every retry by the state read again; a commit this instance
 * already expects to be refused is checked first without a transaction; each commit can record
 * the state version it was applied under.
 */
export function guardCommits (seams: CommitSeams, { store, cache, identify }: GuardOptions): void {
  const judge = (current: MaintenanceState, principal: unknown) => {
    cache.apply(current)
    if (!mayWrite(current, identify(principal))) throw refusalFor(current)
  }

  // The transaction's first statement either way, its lock held to the end; sent with the
  // BEGIN when the unit of work and the store both can (no round trip of its own).
  const atBegin = store.stateAtBegin?.()
  if (atBegin !== undefined && seams.guardAtBegin !== undefined) {
    seams.guardAtBegin({
      statement: atBegin.statement,
      judge (rows, { unitOfWork }) {
        let current: MaintenanceState
        try {
          current = atBegin.state(rows)
        } catch (err) {
          throw unreadable(err)
        }
        judge(current, unitOfWork.principal)
      },
      unreadable,
    })
  } else {
    seams.onBeforeWrites(async function guardCommit ({ transaction, unitOfWork }) {
      let current: MaintenanceState
      try {
        current = await store.readInTransaction(transaction)
      } catch (err) {
        throw unreadable(err)
      }
      judge(current, unitOfWork.principal)
    })
  }

  // One read instead of BEGIN, a locked read and ROLLBACK, and no turn at the write lock (which
  // a maintainer's reindex needs). Allowed ones go on to the guard.
  // The read confirms the refusal: one that began after this unit of work did, shared by the
  // refusals that wait for it (editors retrying in a tight loop cost one read, not one each).
  seams.onBeforeCommit?.(async function refuseEarly ({ unitOfWork }) {
    const principal = identify(unitOfWork.principal)
    if (mayWrite(cache.state, principal)) return
    const current = unitOfWork.begunAt === undefined ? await cache.refresh() : await cache.readSince(unitOfWork.begunAt)
    if (!mayWrite(current, principal)) throw refusalFor(current)
  })

  // Read by the commit's own statement (not the guard's): a history of commits can then be
  // checked against the mode changes.
  const versionStamp = store.versionStamp?.bind(store)
  if (versionStamp !== undefined) seams.stampCommits?.((transaction) => versionStamp(transaction))

  seams.onBeforeRetry(async function judgeRetry ({ principal }) {
    const current = await cache.refresh()
    if (!mayWrite(current, identify(principal))) throw refusalFor(current)
  })
}
