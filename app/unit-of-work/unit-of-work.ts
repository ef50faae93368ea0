import type { Expression, Kysely, Transaction } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import { classifyDatabaseError, isDatabaseUnavailable } from '../db/errors.js'
import { replicaCouldNotServe } from '../db/replicas.js'
import type { DB } from '../db/schema.js'
import { transactionBeginningWith } from '../db/transactions.js'
import { ConflictError, databaseUnavailable, StateUnavailableError } from '../errors.js'
import { recordCommit } from './commit-log.js'

/** A write staged by a handler; it runs inside the commit transaction, in staging order. */
export type StagedWrite = (transaction: Transaction<DB>) => Promise<void>
export type AfterCommit = () => void | Promise<void>

/**
 * Who a unit of work runs as, as far as the unit of work is concerned: a name for the commit
 * log (null: nobody signed in). The principal itself is the application's type; the unit of
 * work carries it to the seams' hooks without looking further into it.
 */
export type Actor = { readonly name: string } | null

export interface CommitContext<P extends Actor = Actor> {
  transaction: Transaction<DB>
  unitOfWork: UnitOfWork<P>
}

export interface RetryContext<P extends Actor = Actor> {
  /** The attempt about to start (2 for the first retry). */
  attempt: number
  principal: P
  /** The conflict that caused the retry. */
  cause: Error
}

/** Runs inside the commit transaction, before the staged writes; throwing vetoes the commit. */
export type BeforeWritesHook<P extends Actor = Actor> = (context: CommitContext<P>) => Promise<void>
/**
 * Runs before a commit with writes opens its transaction; throwing refuses the commit without
 * taking a connection or a lock. (The in-transaction hooks still judge every commit that goes on.)
 */
export type BeforeCommitHook<P extends Actor = Actor> = (context: { unitOfWork: UnitOfWork<P> }) => Promise<void>
/** Runs before each retry; throwing ends the request with that error. */
export type BeforeRetryHook<P extends Actor = Actor> = (context: RetryContext<P>) => Promise<void>
/**
 * What each commit records as `commit_log.state_version`: an expression the database evaluates
 * in the commit's last statement, after the staged writes, inside the commit transaction.
 */
export type CommitStamp = (transaction: Transaction<DB>) => Expression<number>
/**
 * A judgement of every commit by what its transaction's first statement reads (the maintenance
 * state): `statement` is fixed SQL sent with the BEGIN where the database allows
 * (app/db/transactions.ts); `judge` gets its rows before the writes and throws to veto the
 * commit; `unreadable` is what to throw when the statement fails otherwise than by a lost database.
 */
export interface BeginGuard<P extends Actor = Actor> {
  statement: string
  judge (rows: readonly unknown[], context: { unitOfWork: UnitOfWork<P> }): void
  unreadable (error: unknown): Error
}
/**
 * Read on the commit's own connection right after its COMMIT: where the commit is in the
 * database's history (PostgreSQL with replicas: the WAL position), kept as
 * `unitOfWork.commitPosition`, so that the person's later reads can wait for a replica to have it.
 */
export type CommitPosition = (connection: Kysely<DB>) => Promise<bigint>

type State = 'open' | 'committing' | 'committed' | 'discarded'

/**
 * One attempt of one request (or one batch of a task): it reads through the read-only handle,
 * stages writes and side effects, and is committed once, or discarded.
 */
export class UnitOfWork<P extends Actor = Actor> {
  readonly db: Kysely<DB>
  readonly principal: P
  readonly attempt: number
  readonly signal: AbortSignal | undefined
  /** When this attempt began (performance.now()). */
  readonly begunAt = performance.now()
  #state: State = 'open'
  #commitPosition: bigint | undefined
  readonly #writes: StagedWrite[] = []
  readonly #afterCommit: AfterCommit[] = []

  constructor (db: Kysely<DB>, principal: P, attempt: number, signal?: AbortSignal) {
    this.db = db
    this.principal = principal
    this.attempt = attempt
    this.signal = signal
  }

  get state (): State {
    return this.#state
  }

  get hasWrites (): boolean {
    return this.#writes.length > 0
  }

  /** After a commit with writes, where it is in the database's history, when the engine reads that. */
  get commitPosition (): bigint | undefined {
    return this.#commitPosition
  }

  stage (write: StagedWrite): void {
    this.#assertOpen()
    this.#writes.push(write)
  }

  afterCommit (effect: AfterCommit): void {
    this.#assertOpen()
    this.#afterCommit.push(effect)
  }

  /** Drops everything staged; nothing of this attempt will be written or run. */
  discard (): void {
    if (this.#state === 'open') this.#state = 'discarded'
  }

  #assertOpen (): void {
    if (this.#state !== 'open') throw new Error(`unit of work is ${this.#state}`)
  }

  /** @internal used by UnitOfWorkEngine.commit */
  beginCommit (): { writes: readonly StagedWrite[], afterCommit: readonly AfterCommit[] } {
    this.#assertOpen()
    this.#state = 'committing'
    return { writes: this.#writes, afterCommit: this.#afterCommit }
  }

  /** @internal */
  endCommit (committed: boolean, position?: bigint): void {
    this.#state = committed ? 'committed' : 'discarded'
    this.#commitPosition = position
  }
}

export interface UnitOfWorkEngineOptions {
  writer: Kysely<DB>
  reader: Kysely<DB>
  /** Attempts in all, the first included. */
  attempts: number
  log: FastifyBaseLogger
  /** Read after each commit with writes (see {@link CommitPosition}); none: nothing is read. */
  commitPosition?: CommitPosition
}

export interface RunOptions {
  signal?: AbortSignal
  /**
   * What the first attempt reads through instead of the engine's reader (a replica). A retry
   * reads through the engine's reader, as does an attempt run again because this handle's
   * server could not serve its reads (down, cut off, or a standby that cancelled the query).
   */
  reader?: Kysely<DB>
  /** Runs before each retry, after the engine's own retry hooks (the HTTP layer resets the reply). */
  onRetry?: (attempt: number) => void
}

/**
 * Commits units of work with optimistic version checks, retries conflicts, and offers two seams:
 * hooks inside the commit transaction before the writes, and hooks before each retry.
 */
export class UnitOfWorkEngine<P extends Actor = Actor> {
  readonly attempts: number
  readonly #writer: Kysely<DB>
  readonly #reader: Kysely<DB>
  readonly #log: FastifyBaseLogger
  readonly #commitPosition: CommitPosition | undefined
  readonly #beforeWrites: BeforeWritesHook<P>[] = []
  readonly #beforeRetry: BeforeRetryHook<P>[] = []
  readonly #beforeCommit: BeforeCommitHook<P>[] = []
  #stamp: CommitStamp | undefined
  #guard: BeginGuard<P> | undefined
  readonly #commits = new Set<Promise<unknown>>()
  #closed = false

  constructor (options: UnitOfWorkEngineOptions) {
    this.#writer = options.writer
    this.#reader = options.reader
    this.attempts = options.attempts
    this.#log = options.log
    this.#commitPosition = options.commitPosition
  }

  onBeforeWrites (hook: BeforeWritesHook<P>): void {
    this.#beforeWrites.push(hook)
  }

  onBeforeRetry (hook: BeforeRetryHook<P>): void {
    this.#beforeRetry.push(hook)
  }

  onBeforeCommit (hook: BeforeCommitHook<P>): void {
    this.#beforeCommit.push(hook)
  }

  /**
   * Records with every commit the maintenance state version it was applied under, so that a
   * history of commits can be checked against the history of mode changes (test/chaos.test.ts).
   */
  stampCommits (stamp: CommitStamp): void {
    this.#stamp = stamp
  }

  /** Judges every commit by its transaction's first statement (see {@link BeginGuard}), sent with the BEGIN. */
  guardAtBegin (guard: BeginGuard<P>): void {
    if (this.#guard !== undefined) throw new Error('the unit of work has a commit guard already')
    this.#guard = guard
  }

  begin (principal: P, attempt = 1, signal?: AbortSignal, reader: Kysely<DB> = this.#reader): UnitOfWork<P> {
    return new UnitOfWork(reader, principal, attempt, signal)
  }

  /**
   * Runs `work` in a unit of work and commits it; a conflict runs it again from the start, up to
   * the configured attempts. The last conflict is thrown as `409 QUIESCE_CONFLICT`.
   */
  async run<T> (principal: P, work: (unitOfWork: UnitOfWork<P>) => Promise<T>, options: RunOptions = {}): Promise<T> {
    let reader = options.reader ?? this.#reader
    for (let attempt = 1; ; attempt++) {
      const unitOfWork = this.begin(principal, attempt, options.signal, reader)
      let result: T
      try {
        result = await work(unitOfWork)
      } catch (err) {
        unitOfWork.discard()
        if (reader !== this.#reader && replicaCouldNotServe(err)) {
          // Not a conflict: the same attempt once more, reading from the primary.
          this.#log.debug({ err }, 'a replica could not serve the reads; reading from the primary')
          reader = this.#reader
          options.onRetry?.(attempt)
          attempt--
          continue
        }
        // A conflict the work itself raises (a stale version sent by a client) is final.
        throw err
      }
      if (unitOfWork.state !== 'open') return result
      try {
        await this.commit(unitOfWork)
        return result
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err
        if (attempt >= this.attempts) throw new ConflictError(conflictMessage(this.attempts), { cause: err })
        this.#log.debug({ attempt, err }, 'commit conflicted; retrying')
        reader = this.#reader
        for (const hook of this.#beforeRetry) await hook({ attempt: attempt + 1, principal, cause: err })
        options.onRetry?.(attempt + 1)
      }
    }
  }

  /**
   * Applies the staged writes in one short transaction. A unit of work that staged nothing
   * commits trivially, without a transaction. `afterCommit` effects run only after success.
   */
  async commit (unitOfWork: UnitOfWork<P>): Promise<void> {
    if (this.#closed) throw new Error('the unit of work engine is closed')
    if (unitOfWork.hasWrites) {
      // A client that went away gets none of its writes applied; a read has nothing to refuse.
      unitOfWork.signal?.throwIfAborted()
      try {
        for (const hook of this.#beforeCommit) await hook({ unitOfWork })
      } catch (err) {
        unitOfWork.discard()
        throw err
      }
    }
    const { writes, afterCommit } = unitOfWork.beginCommit()
    let position: bigint | undefined
    if (writes.length > 0) {
      // Past this point only the COMMIT is left: a connection lost now leaves the outcome unknown.
      let committing = false
      const apply = async (transaction: Transaction<DB>) => {
        for (const hook of this.#beforeWrites) await hook({ transaction, unitOfWork })
        for (const write of writes) await write(transaction)
        await recordCommit(transaction, unitOfWork.principal?.name ?? null, this.#stamp?.(transaction) ?? null)
        committing = true
      }
      const guard = this.#guard
      const transact = guard === undefined
        ? (db: Kysely<DB>) => db.transaction().execute(apply)
        : async (db: Kysely<DB>) => {
          let judged = false
          try {
            await transactionBeginningWith(db, guard.statement, async (transaction, rows) => {
              judged = true
              guard.judge(rows, { unitOfWork })
              await apply(transaction)
            })
          } catch (err) {
            // The guard's statement failed with the BEGIN: it could not read what it judges. Not a
            // BEGIN that waited too long for the write lock (SQLite): that is a conflict, retried.
            if (!judged && !isDatabaseUnavailable(err) && asConflict(err) === undefined) throw guard.unreadable(err)
            throw err
          }
        }
      const readPosition = this.#commitPosition
      const commit: Promise<bigint | undefined | void> = readPosition === undefined
        ? transact(this.#writer)
        : this.#writer.connection().execute(async (connection) => {
          await transact(connection)
          // The commit stands whatever happens from here.
          return await readPosition(connection).catch(() => undefined)
        }).then(async (position) => position ?? await this.#positionElsewhere(readPosition))
      this.#commits.add(commit)
      try {
        position = (await commit) ?? undefined
      } catch (err) {
        unitOfWork.endCommit(false)
        if (!(err instanceof StateUnavailableError) && isDatabaseUnavailable(err)) throw databaseUnavailable(err, { committing })
        throw asConflict(err) ?? err
      } finally {
        this.#commits.delete(commit)
      }
    }
    unitOfWork.endCommit(true, position)
    for (const effect of afterCommit) {
      try {
        await effect()
      } catch (err) {
        this.#log.error({ err }, 'an afterCommit effect failed (the commit stands)')
      }
    }
  }

  /**
   * A position that could not be read on the commit's own connection (lost right after the
   * COMMIT) is read on another: any position read after the COMMIT is at or past it.
   */
  async #positionElsewhere (readPosition: CommitPosition): Promise<bigint | undefined> {
    return await readPosition(this.#writer).catch((err: unknown) => {
      this.#log.warn({ err }, 'the position of a commit could not be read; the person\'s next reads may come from a replica that lacks it')
      return undefined
    })
  }

  /** Refuses new commits and waits for the ones in progress, so the database can close. */
  async close (): Promise<void> {
    this.#closed = true
    await Promise.allSettled(this.#commits)
  }
}

/** Commit-time failures that mean "someone else changed this first" become retryable conflicts. */
function asConflict (err: unknown): Error | undefined {
  if (err instanceof ConflictError) return err
  const kind = classifyDatabaseError(err)
  if (kind === 'unique-violation' || kind === 'serialization' || kind === 'busy') {
    return new ConflictError(`the commit conflicted (${kind})`, { cause: err })
  }
  return undefined
}

/** For staged writes: an update or delete guarded by `version = expected` that matched no row. */
export function assertVersionMatched (result: { numUpdatedRows?: bigint, numDeletedRows?: bigint }, what: string): void {
  const rows = result.numUpdatedRows ?? result.numDeletedRows ?? 0n
  if (rows === 0n) throw new ConflictError(`${what} changed since it was read`)
}

function conflictMessage (attempts: number): string {
  return `The change conflicted with a concurrent change and was not saved (tried ${attempts} time${attempts === 1 ? '' : 's'})`
}
