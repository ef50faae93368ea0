import pg from 'pg'
import type { Kysely } from 'kysely'
import { classifyDatabaseError } from './errors.js'
import { openReader, POSTGRES_TIMEOUTS, redactPassword, type PostgresTimeouts } from './postgres.js'
import type { DB } from './schema.js'
import { parseWalPosition, type WalPosition } from './wal-position.js'

export interface ReplicaOptions {
  /** `postgres://` URLs of hot standbys of the primary, in the order of QUIESCE_REPLICA_URLS. */
  urls: string[]
  /** A replica further behind than this is left out until it catches up. */
  maxLagMs: number
  /** How often the primary's position and each replica's are read (tests shorten it). */
  pollMs?: number
}

/** What this instance knows of a replica from its last check; no query. */
export interface ReplicaStatus {
  /** `replica-N`, N its place in QUIESCE_REPLICA_URLS: what `Quiesce-Replica` says. */
  name: string
  /** Its URL without the password. */
  location: string
  /** Whether requests may read from it now (a person's own position aside). */
  usable: boolean
  /** Why it is not used, when it is not. */
  problem: string | null
  /** How far it has replayed the primary's WAL. */
  replayed: WalPosition | null
  /** How long ago the primary had flushed no more than it has replayed (see {@link PrimaryPositions}). */
  lagMs: number | null
  /** How many bytes of WAL the primary had flushed beyond what it has replayed, at the last check. */
  lagBytes: number | null
  /** When it was last checked (epoch ms); null: not yet. */
  checkedAt: number | null
}

export const REPLICA_POLL_MS = 100

/**
 * The checks run on connections of their own with short bounds, so a replica that is down or
 * hung is known as such within about a second, without waiting for a request to find out.
 */
const CHECK_TIMEOUTS = { connectMs: 500, statementMs: 500, queryMs: 1000 }

/**
 * Request reads go to a replica only when it answers at once: one that cannot be connected to
 * within a second is taken as down (the read runs on the primary). Its statements get the
 * primary reader's bounds, since a read may legitimately take that long on either.
 */
const REPLICA_READ_TIMEOUTS: PostgresTimeouts = { ...POSTGRES_TIMEOUTS, connectMs: 1000 }

/**
 * The primary's WAL flush position, sampled every poll, and from it each replica's lag in time:
 * a replica that has replayed the position the primary had flushed at time t has everything
 * committed before t, so its lag is now - t for the newest such sample. Measured this way, an
 * idle primary does not make replicas look behind (as `now() - pg_last_xact_replay_timestamp()`
 * does), and a replica cut off from the primary (its receiver stopped, everything it got
 * replayed) is seen falling behind.
 */
export class PrimaryPositions {
  readonly #keepMs: number
  readonly #samples: Array<{ at: number, flushed: WalPosition }> = []

  /** `keepMs`: how far back lag can be told; beyond it a lag is reported as at least that. */
  constructor (keepMs: number) {
    this.#keepMs = keepMs
  }

  /** The newest flush position sampled, if any. */
  get latest (): WalPosition | undefined {
    return this.#samples.at(-1)?.flushed
  }

  record (at: number, flushed: WalPosition): void {
    this.#samples.push({ at, flushed })
    while (this.#samples.length > 2 && this.#samples[1]!.at < at - this.#keepMs) this.#samples.shift()
  }

  /** The lag of a replica that has replayed `replayed`, at `now`; undefined before the first sample. */
  lagMs (replayed: WalPosition, now: number): number | undefined {
    const samples = this.#samples
    if (samples.length === 0) return undefined
    for (let i = samples.length - 1; i >= 0; i--) {
      if (samples[i]!.flushed <= replayed) return Math.max(0, now - samples[i]!.at)
    }
    // Behind every sample kept: at least as far behind as the oldest one.
    return Math.max(0, now - samples[0]!.at)
  }
}

/** The reasons a replica read is run again on the primary: its server could not serve it. */
export function replicaCouldNotServe (err: unknown): boolean {
  for (let cause = err, depth = 0; cause !== undefined && cause !== null && depth < 5; cause = (cause as { cause?: unknown }).cause, depth++) {
    const kind = classifyDatabaseError(cause)
    // Down, cut off, timed out; or a query a hot standby cancelled for a conflict with recovery (40001).
    if (kind === 'unavailable' || kind === 'serialization') return true
  }
  return false
}

/** One hot standby: its read handle, its check connection, and what its last check said. */
export class Replica {
  readonly name: string
  readonly location: string
  /** Read-only sessions on the replica, for requests' units of work. */
  readonly db: Kysely<DB>
  readonly #check: pg.Pool
  #replayed: WalPosition | undefined
  #lagMs: number | undefined
  #lagBytes: number | undefined
  #checkedAt: number | undefined
  #problem: string | undefined = 'not checked yet'

  constructor (name: string, url: string, onIdleError: (err: Error) => void) {
    this.name = name
    this.location = redactPassword(url)
    this.db = openReader(url, onIdleError, REPLICA_READ_TIMEOUTS, 10, (err) => {
      // A request found it down before the next check: leave it out at once.
      if (classifyDatabaseError(err) === 'unavailable') this.#problem = `unreachable: ${(err as Error).message}`
    })
    this.#check = checkPool(url, 'quiesce-replica-check')
    this.#check.on('error', () => {})
  }

  /** Whether a request whose person must see `readAfter` may read here now. */
  canServe (readAfter: WalPosition): boolean {
    return this.#problem === undefined && this.#replayed !== undefined && this.#replayed >= readAfter
  }

  status (): ReplicaStatus {
    return {
      name: this.name,
      location: this.location,
      usable: this.#problem === undefined,
      problem: this.#problem ?? null,
      replayed: this.#replayed ?? null,
      lagMs: this.#lagMs ?? null,
      lagBytes: this.#lagBytes ?? null,
      checkedAt: this.#checkedAt ?? null,
    }
  }

  /** One check: is it a standby of our primary, and how far has it replayed. */
  async check (primary: PrimaryPositions, primarySystem: string | undefined, maxLagMs: number): Promise<void> {
    let row: { standby: boolean, replayed: string | null, system: string }
    try {
      row = (await this.#check.query<typeof row>(
        'select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as replayed, (select system_identifier::text from pg_control_system()) as system'
      )).rows[0]!
    } catch (err) {
      this.#checkedAt = Date.now()
      this.#problem = `unreachable: ${(err as Error).message}`
      return
    }
    this.#checkedAt = Date.now()
    const replayed = row.replayed === null ? undefined : parseWalPosition(row.replayed)
    const lagMs = replayed === undefined ? undefined : primary.lagMs(replayed, this.#checkedAt)
    const latest = primary.latest
    this.#replayed = replayed
    this.#lagMs = lagMs
    this.#lagBytes = replayed === undefined || latest === undefined ? undefined : Math.max(0, Number(latest - replayed))
    this.#problem = problemOf(row.standby, row.system, primarySystem, lagMs, maxLagMs)
  }

  async close (): Promise<void> {
    await Promise.allSettled([this.db.destroy(), this.#check.end()])
  }
}

/** Why a checked replica may not serve reads, or undefined: it may. */
function problemOf (standby: boolean, system: string, primarySystem: string | undefined, lagMs: number | undefined, maxLagMs: number): string | undefined {
  if (!standby) return 'not a standby (promoted?): it no longer follows the primary'
  if (primarySystem === undefined) return 'the primary could not be checked'
  if (system !== primarySystem) return `a standby of another cluster (system ${system}, the primary's is ${primarySystem})`
  if (lagMs === undefined) return 'the primary\'s position is not known yet'
  if (lagMs > maxLagMs) return `lagging ${lagMs} ms behind the primary (more than ${maxLagMs} ms)`
  return undefined
}

/**
 * The replicas of the primary and what this instance knows of them, kept in memory by a
 * background poll (the primary's flush position, then each replica's replay position, every
 * {@link REPLICA_POLL_MS}), so choosing one for a request costs no query.
 */
export class Replicas {
  readonly maxLagMs: number
  readonly #replicas: Replica[]
  readonly #primaryCheck: pg.Pool
  readonly #primary: PrimaryPositions
  readonly #pollMs: number
  readonly #listeners: Array<(status: ReplicaStatus, previous: ReplicaStatus) => void> = []
  #primarySystem: string | undefined
  #turn = 0
  #timer: NodeJS.Timeout | undefined
  #polling: Promise<void> | undefined
  #closed = false

  constructor (primaryUrl: string, options: ReplicaOptions, onIdleError: (err: Error) => void = () => {}) {
    this.maxLagMs = options.maxLagMs
    this.#pollMs = options.pollMs ?? REPLICA_POLL_MS
    this.#primary = new PrimaryPositions(options.maxLagMs * 2 + 1000)
    this.#primaryCheck = checkPool(primaryUrl, 'quiesce-primary-check')
    this.#primaryCheck.on('error', () => {})
    this.#replicas = options.urls.map((url, index) => new Replica(`replica-${index + 1}`, url, onIdleError))
    this.#schedule(0)
  }

  /**
   * A replica that has replayed at least `readAfter` (0n: anything) and is usable now, taking
   * turns among them; undefined: read from the primary.
   */
  choose (readAfter: WalPosition): Replica | undefined {
    const count = this.#replicas.length
    for (let i = 0; i < count; i++) {
      const replica = this.#replicas[(this.#turn + i) % count]!
      if (replica.canServe(readAfter)) {
        this.#turn = (this.#turn + i + 1) % count
        return replica
      }
    }
    return undefined
  }

  /** The replica whose read handle `db` is, if it is one. */
  replicaOf (db: Kysely<DB>): Replica | undefined {
    return this.#replicas.find((replica) => replica.db === db)
  }

  status (): ReplicaStatus[] {
    return this.#replicas.map((replica) => replica.status())
  }

  /** Hears each change of a replica's usability or problem (for the log). */
  onChange (listener: (status: ReplicaStatus, previous: ReplicaStatus) => void): void {
    this.#listeners.push(listener)
  }

  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    await this.#polling
    await Promise.allSettled([this.#primaryCheck.end(), ...this.#replicas.map((replica) => replica.close())])
  }

  #schedule (ms: number): void {
    if (this.#closed) return
    this.#timer = setTimeout(() => {
      this.#polling = this.#poll().finally(() => {
        this.#polling = undefined
        this.#schedule(this.#pollMs)
      })
    }, ms)
    this.#timer.unref()
  }

  async #poll (): Promise<void> {
    try {
      const { rows } = await this.#primaryCheck.query<{ flushed: string, system: string }>(
        'select pg_current_wal_flush_lsn()::text as flushed, (select system_identifier::text from pg_control_system()) as system'
      )
      const flushed = parseWalPosition(rows[0]!.flushed)
      if (flushed !== undefined) this.#primary.record(Date.now(), flushed)
      this.#primarySystem = rows[0]!.system
    } catch {
      // The primary's own failures are the unit of work's to report; its replicas' lag grows
      // from the last sample, so they drop out once that is longer ago than the max lag.
    }
    await Promise.all(this.#replicas.map(async (replica) => {
      const previous = replica.status()
      await replica.check(this.#primary, this.#primarySystem, this.maxLagMs)
      const status = replica.status()
      if (status.usable !== previous.usable || (status.problem !== previous.problem && !status.usable && !sameKindOfProblem(status.problem, previous.problem))) {
        for (const listener of this.#listeners) listener(status, previous)
      }
    }))
  }
}

/** A lag of 2100 ms and then 2200 ms is the same problem, for the log. */
function sameKindOfProblem (a: string | null, b: string | null): boolean {
  return a?.split(' ')[0] === b?.split(' ')[0]
}

function checkPool (url: string, applicationName: string): pg.Pool {
  return new pg.Pool({
    connectionString: url,
    max: 1,
    connectionTimeoutMillis: CHECK_TIMEOUTS.connectMs,
    query_timeout: CHECK_TIMEOUTS.queryMs,
    idleTimeoutMillis: 0,
    keepAlive: true,
    application_name: applicationName,
    options: `-c statement_timeout=${CHECK_TIMEOUTS.statementMs}`,
  })
}
