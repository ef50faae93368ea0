import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'

/**
 * A throwaway PostgreSQL server of the test's own, for what must not happen to the shared one on
 * 5432: stopping it (`-m immediate`, a crash as far as clients can tell), restarting it, freezing
 * it. Built with the machine's binaries in a temp dir on a free port, run as the `postgres` OS user
 * when the tests run as root (PostgreSQL refuses to run as root), and removed afterwards, also when
 * the test process exits early, and by a watchdog process when it is killed (vitest ends a worker
 * whose test hangs without running its exit handlers).
 *
 * A server is a data directory plus a port, so a hot standby is one more PostgresServer over a
 * directory that `pg_basebackup -R` filled from this one ({@link createStandby}); initdb's trust
 * rules already admit replication from 127.0.0.1. Lag is injected deterministically with
 * `recovery_min_apply_delay` ({@link setApplyDelay}): the standby applies each commit that long
 * after the primary made it (same machine, same clock).
 */
export class PostgresServer {
  readonly root: string
  readonly dataDir: string
  readonly port: number
  readonly #bin: string
  readonly #logFile: string
  /** Set on a standby: the server it streams from. */
  readonly primary: PostgresServer | undefined
  #running = false
  #frozen: number[] = []
  #watchdog: ChildProcess | undefined

  private constructor (root: string, port: number, bin: string, primary?: PostgresServer) {
    this.root = root
    this.dataDir = path.join(root, 'data')
    this.port = port
    this.#bin = bin
    this.#logFile = path.join(root, 'server.log')
    this.primary = primary
    live.add(this)
  }

  /** A detached shell that stops the server and removes its directory once this process is gone. */
  #watch (): void {
    const script = `while [ -d /proc/${process.pid} ]; do sleep 2; done; "$1/pg_ctl" -D "$2" -m immediate stop >/dev/null 2>&1; rm -rf "$3"`
    this.#watchdog = spawn('sh', ['-c', script, 'watchdog', this.#bin, this.dataDir, this.root], { detached: true, stdio: 'ignore', ...asPostgres() })
    this.#watchdog.unref()
  }

  /** initdb in a new temp dir, then start on a free port. `settings` go into postgresql.conf. */
  static async create (settings: Settings = {}): Promise<PostgresServer> {
    const bin = postgresBinDir()
    const root = mkdtempSync(path.join(tmpdir(), 'quiesce-pg-'))
    const server = new PostgresServer(root, await freePort(), bin)
    try {
      mkdirSync(server.dataDir, { mode: 0o700 })
      handOver(root)
      handOver(server.dataDir)
      server.#watch()
      await server.#run('initdb', ['-D', server.dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'])
      server.configure({
        listen_addresses: '127.0.0.1',
        unix_socket_directories: '',
        // Durability against power loss is not what these tests are about; crash recovery after
        // `stop -m immediate` still replays the WAL, since the OS keeps what was written.
        fsync: false,
        shared_buffers: '16MB',
        max_connections: 60,
        ...settings,
      })
      await server.start()
      return server
    } catch (err) {
      await server.destroy()
      throw err
    }
  }

  /**
   * A hot standby of this server: `pg_basebackup -R` (with a replication slot of its own, so the
   * primary keeps the WAL it has not received while it is stopped) into a new temp dir, started
   * on a free port; it is read-only until {@link promote}d. `settings` go into its
   * postgresql.conf, e.g. `{ recovery_min_apply_delay: '500ms' }`. Resolves once it accepts
   * connections and has replayed everything the primary had committed.
   */
  async createStandby (settings: Settings = {}): Promise<PostgresServer> {
    if (!this.#running) throw new Error('the primary must run to take a base backup of it')
    const root = mkdtempSync(path.join(tmpdir(), 'quiesce-pg-standby-'))
    const standby = new PostgresServer(root, await freePort(), this.#bin, this)
    try {
      handOver(root)
      standby.#watch()
      const slot = `standby_${standby.port}`
      await standby.#run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-D', standby.dataDir,
        '-R', '-X', 'stream', '-C', '-S', slot, '--checkpoint=fast', '--no-sync'])
      standby.configure({ hot_standby: true, ...settings })
      await standby.start()
      await standby.caughtUp()
      return standby
    } catch (err) {
      await standby.destroy()
      throw err
    }
  }

  /**
   * Sets `recovery_min_apply_delay` on a standby and reloads it (the setting needs no restart).
   * The delay holds back commits that arrive from now on.
   */
  async setApplyDelay (ms: number): Promise<void> {
    this.configure({ recovery_min_apply_delay: `${ms}ms` })
    await this.query('select pg_reload_conf()')
    const deadline = Date.now() + 10_000
    while ((await this.query<{ setting: string }>("select setting from pg_settings where name = 'recovery_min_apply_delay'"))[0]?.setting !== String(ms)) {
      if (Date.now() > deadline) throw new Error(`recovery_min_apply_delay did not become ${ms} ms`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** Whether the server is a standby in recovery now. */
  async inRecovery (): Promise<boolean> {
    return (await this.query<{ recovery: boolean }>('select pg_is_in_recovery() as recovery'))[0]!.recovery
  }

  /** Promotes a standby to a primary of its own (`pg_promote()`, which waits until it is done). */
  async promote (): Promise<void> {
    const [row] = await this.query<{ promoted: boolean }>('select pg_promote(true, 60) as promoted')
    if (row?.promoted !== true) throw new Error(`the standby was not promoted:\n${this.log().slice(-2000)}`)
  }

  /**
   * On a standby: waits until it has replayed everything its primary has flushed so far (the
   * apply delay, if any, included). The flush position, not the insert position: right after a
   * segment switch the insert position points past the new segment's header, where no record
   * ends, so a standby that replayed everything would not reach it until the next record.
   */
  async caughtUp (timeoutMs = 30_000): Promise<void> {
    if (this.primary === undefined) throw new Error('caughtUp is for a standby')
    const [target] = await this.primary.query<{ lsn: string }>('select pg_current_wal_flush_lsn()::text as lsn')
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const [row] = await this.query<{ done: boolean }>(`select coalesce(pg_last_wal_replay_lsn() >= '${target!.lsn}'::pg_lsn, false) as done`)
        if (row?.done === true) return
      } catch (err) {
        // Still starting up (57P03): it does not accept connections until it is consistent.
        if ((err as { code?: string }).code !== '57P03' && (err as { code?: string }).code !== 'ECONNREFUSED') throw err
      }
      if (Date.now() > deadline) throw new Error(`the standby did not replay up to ${target!.lsn} within ${timeoutMs} ms:\n${this.log().slice(-2000)}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  /** Appends settings to postgresql.conf (a later line wins); they apply at the next start. */
  configure (settings: Settings): void {
    const lines = Object.entries({ port: this.port, ...settings }).map(([name, value]) => `${name} = ${quoteSetting(value)}\n`)
    appendFileSync(path.join(this.dataDir, 'postgresql.conf'), lines.join(''))
  }

  get running (): boolean {
    return this.#running
  }

  /** The connection string for `database` (trust auth, user postgres). */
  url (database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`
  }

  async start (): Promise<void> {
    await this.#run('pg_ctl', ['-D', this.dataDir, '-l', this.#logFile, '-w', '-t', '60', 'start'])
    this.#running = true
  }

  /**
   * Stops the server. `immediate` (the default) is what clients see when a database server
   * crashes: every connection is cut at once, nothing is shut down cleanly, and the next start
   * runs crash recovery.
   */
  async stop (mode: 'immediate' | 'fast' = 'immediate'): Promise<void> {
    this.thaw()
    await this.#run('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '60', 'stop'])
    this.#running = false
  }

  async restart (): Promise<void> {
    await this.stop()
    await this.start()
  }

  /**
   * Stops every process of the server with SIGSTOP: the port still accepts TCP connections and
   * open connections stay up, but nothing answers (a hung server, a network partition, storage
   * that stalls). Only the clients' own timeouts end their waits.
   */
  freeze (): void {
    if (this.#frozen.length > 0) return
    const postmaster = Number(readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    const pids = [postmaster, ...childrenOf(postmaster)]
    for (const pid of pids) process.kill(pid, 'SIGSTOP')
    this.#frozen = pids
  }

  thaw (): void {
    for (const pid of this.#frozen) {
      try {
        process.kill(pid, 'SIGCONT')
      } catch {
        // gone already
      }
    }
    this.#frozen = []
  }

  /** Runs one statement as the superuser on `database`. */
  async query<R extends pg.QueryResultRow = Record<string, unknown>> (text: string, database = 'postgres'): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(database) })
    await client.connect()
    try {
      return (await client.query<R>(text)).rows
    } finally {
      await client.end()
    }
  }

  /** Creates an empty database and returns its connection string. */
  async createDatabase (name: string): Promise<string> {
    await this.query(`create database ${name}`)
    return this.url(name)
  }

  /** The server's log so far (for a failing test's message). */
  log (): string {
    return existsSync(this.#logFile) ? readFileSync(this.#logFile, 'utf8') : ''
  }

  /** Stops the server if it runs and removes its directory. */
  async destroy (): Promise<void> {
    live.delete(this)
    this.#watchdog?.kill()
    try {
      if (this.#running) await this.stop()
    } finally {
      rmSync(this.root, { recursive: true, force: true })
    }
    // A standby's slot would keep the primary's WAL for ever.
    if (this.primary?.running === true) {
      await this.primary.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = 'standby_${this.port}'`).catch(() => {})
    }
  }

  /** Removes a server synchronously (the test process is exiting). */
  destroySync (): void {
    this.thaw()
    if (this.#running) {
      try {
        execFileSync(path.join(this.#bin, 'pg_ctl'), ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore', ...asPostgres() })
      } catch {
        // it is gone already
      }
    }
    rmSync(this.root, { recursive: true, force: true })
  }

  async #run (program: string, args: string[]): Promise<void> {
    const child = spawn(path.join(this.#bin, program), args, { stdio: ['ignore', 'pipe', 'pipe'], ...asPostgres() })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', resolve)
    })
    if (code !== 0) throw new Error(`${program} ${args.join(' ')} exited with ${code}:\n${output}\n${this.log().slice(-2000)}`)
  }
}

type Settings = Record<string, string | number | boolean>

const live = new Set<PostgresServer>()
process.once('exit', () => {
  for (const server of live) server.destroySync()
})

function quoteSetting (value: string | number | boolean): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off'
  if (typeof value === 'number') return String(value)
  return `'${value.replaceAll("'", "''")}'`
}

/** `QUIESCE_TEST_POSTGRES_BIN`, else the newest /usr/lib/postgresql/N/bin. */
function postgresBinDir (): string {
  const configured = process.env.QUIESCE_TEST_POSTGRES_BIN
  if (configured !== undefined && configured !== '') return configured
  const base = '/usr/lib/postgresql'
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin', 'initdb'))) : []
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0]
  if (newest === undefined) throw new Error(`no PostgreSQL server binaries in ${base}/*/bin (install postgresql, or set QUIESCE_TEST_POSTGRES_BIN)`)
  return path.join(base, newest, 'bin')
}

let postgresUser: { uid: number, gid: number } | undefined

/** Spawn options that run a program as the `postgres` OS user when we are root. */
function asPostgres (): { uid?: number, gid?: number } {
  if (process.getuid?.() !== 0) return {}
  if (postgresUser === undefined) {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.startsWith('postgres:'))
    if (line === undefined) throw new Error('the tests run as root, and PostgreSQL will not: there is no `postgres` OS user to run it as')
    const [, , uid, gid] = line.split(':')
    postgresUser = { uid: Number(uid), gid: Number(gid) }
  }
  return postgresUser
}

function handOver (dir: string): void {
  const user = asPostgres()
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!)
}

function childrenOf (pid: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (parent === pid) children.push(Number(entry))
    } catch {
      // exited meanwhile
    }
  }
  return children
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
}
