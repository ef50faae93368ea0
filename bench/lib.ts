/**
 * Shared by the benchmarks under bench/: servers in child processes (always stopped, also on
 * failure or Ctrl-C), the app's CLI, the build check, autocannon runs and compact tables.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import BetterSqlite3 from 'better-sqlite3'
import pg from 'pg'

export const ROOT = path.resolve(import.meta.dirname, '..')
export const APP_BIN = path.join(ROOT, 'dist/app/cli/bin.js')
export const RESULTS_DIR = path.join(ROOT, 'bench/results')

export function envNumber (name: string, fallback: number, min = 1): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number ≥ ${min}, not ${raw}`)
  return value
}

// ---------------------------------------------------------------------------------------------
// Child processes and cleanup

export interface Server {
  name: string
  url: string
  child: ChildProcess
  /** Lines the server printed (stdout and stderr), the last 200. */
  output: string[]
  /** JSON log lines (pino) the server printed after it was ready: warnings and errors. */
  logLines: number
}

const children = new Set<ChildProcess>()
const cleanups: Array<() => Promise<void>> = []
let cleaningUp: Promise<void> | undefined

/** Runs at the end (last registered first), after every child process has stopped. */
export function onCleanup (task: () => Promise<void>): void {
  cleanups.push(task)
}

/** Stops every child process, then runs the cleanup tasks; safe to call more than once. */
export function cleanup (): Promise<void> {
  cleaningUp ??= (async () => {
    for (const child of children) child.kill('SIGTERM')
    await Promise.all([...children].map((child) => exited(child, 10_000)))
    for (const task of cleanups.reverse()) {
      try {
        await task()
      } catch (err) {
        console.error(`cleanup: ${(err as Error).message}`)
      }
    }
  })()
  return cleaningUp
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping servers and cleaning up`)
    cleanup().finally(() => process.exit(130))
  })
}

/** Runs `main`, always cleans up, and sets a failing exit code if it threw. */
export async function runMain (main: () => Promise<void>): Promise<void> {
  try {
    await main()
  } catch (err) {
    console.error(err)
    process.exitCode = 1
  } finally {
    await cleanup()
  }
}

async function exited (child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** Environment for a child: ours without QUIESCE_* (a developer's own settings must not leak in). */
function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('QUIESCE_')) env[key] = value
  return { ...env, ...extra }
}

export interface StartOptions {
  /** Write V8 CPU profiles to DIR/NAME/ when the server stops (node --cpu-prof). */
  cpuProfDir?: string
}

/**
 * Starts `node ARGS` and resolves once it prints `listening URL` (bench servers) or
 * `Quiesce is serving URL` (the app), so PORT=0 works.
 */
export async function startServer (name: string, args: string[], env: Record<string, string>, options: StartOptions = {}): Promise<Server> {
  // One directory per server: with --import tsx the loader thread writes a profile of its own.
  const profileDir = options.cpuProfDir === undefined ? undefined : path.join(options.cpuProfDir, name.replace(/[^\w.+-]+/g, '_'))
  const profile = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
  const child = spawn(process.execPath, [...profile, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const server: Server = { name, url: '', child, output: [], logLines: 0 }
  return await new Promise<Server>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('did not start within 30 s')), 30_000)
    function fail (err: Error): void {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`${name}: ${err.message}\n${server.output.slice(-20).join('\n')}`))
    }
    function onLine (line: string): void {
      server.output.push(line)
      if (server.output.length > 200) server.output.shift()
      if (server.url !== '') {
        if (line.startsWith('{')) server.logLines++
        return
      }
      const match = /(?:^listening|Quiesce is serving) (http:\/\/\S+)/.exec(line)
      if (match !== null) {
        server.url = match[1]!
        clearTimeout(timer)
        resolve(server)
      }
    }
    for (const stream of [child.stdout!, child.stderr!]) {
      let pending = ''
      stream.setEncoding('utf8')
      stream.on('data', (chunk: string) => {
        pending += chunk
        const lines = pending.split('\n')
        pending = lines.pop()!
        for (const line of lines) onLine(line)
      })
    }
    child.once('exit', (code, signal) => {
      if (server.url === '') fail(new Error(`exited (${code ?? signal}) before listening`))
    })
  })
}

/** SIGTERM, then SIGKILL after 15 s; a profiled server writes its profile on the way out. */
export async function stopServer (server: Server): Promise<void> {
  server.child.kill('SIGTERM')
  await exited(server.child, 15_000)
}

async function runChild (args: string[], env: NodeJS.ProcessEnv, stdin: string): Promise<{ code: number | null, output: string }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
  children.add(child)
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stdin.end(stdin)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  children.delete(child)
  return { code, output: output.trim() }
}

/** `quiesce ARGS` from dist/ (`node NODE_ARGS … ARGS`); throws with its output unless it exits with 0. */
export async function runCli (args: string[], env: Record<string, string>, stdin = '', nodeArgs: string[] = []): Promise<string> {
  const { code, output } = await runChild([...nodeArgs, APP_BIN, ...args], childEnv(env), stdin)
  if (code !== 0) throw new Error(`quiesce ${args.join(' ')} exited with ${code}:\n${output}`)
  return output
}

/** Builds dist/ (`tsc -p tsconfig.build.json`) unless it is newer than every file under app/. */
export async function ensureBuilt (): Promise<string> {
  const newestSource = newestMtime(path.join(ROOT, 'app'))
  if (existsSync(APP_BIN) && statSync(APP_BIN).mtimeMs >= newestSource) return 'dist/ is up to date'
  const { code, output } = await runChild([path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], process.env, '')
  if (code !== 0) throw new Error(`the build (tsc -p tsconfig.build.json) failed; the benchmark measures the built app:\n${output}`)
  return 'built dist/ (it was older than app/)'
}

function newestMtime (dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs)
  }
  return newest
}

/** The commit measured, and whether app/ or views/ had uncommitted changes. */
export function gitState (): { commit: string, dirty: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'app', 'views', 'public'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean)
    return { commit, dirty }
  } catch {
    // e.g. a `git archive` export; BENCH_COMMIT says which commit it is
    return { commit: process.env.BENCH_COMMIT ?? 'unknown (not a git checkout)', dirty: [] }
  }
}

/** Which commit a report measures (and whether the working tree of app/, views/ or public/ differs from it), and the load now. */
export function describeBuild (report: Record<string, unknown>): string {
  const git = report.git as ReturnType<typeof gitState>
  const dirty = git.dirty.length > 0 ? ` with uncommitted changes under app/, views/ or public/ (${git.dirty.length} file${git.dirty.length === 1 ? '' : 's'}): measuring the working tree` : ''
  return `commit ${git.commit}${dirty}; load ${load().loadavg1.toFixed(1)}${load().note}`
}

/** A temporary directory for a benchmark's data, removed when it ends unless `keep` (then its path is printed). */
export function temporaryDataDir (prefix: string, keep = false): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  onCleanup(async () => {
    if (keep) console.log(`kept ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

/** Runs one part of a benchmark; if it fails, its stack goes to stderr and its first line among the failures, and the run goes on. */
export async function runPart (failures: string[], name: string, run: () => Promise<void>, indent = '\n'): Promise<void> {
  try {
    await run()
  } catch (err) {
    console.error(`${indent}${name} failed: ${(err as Error).stack ?? String(err)}`)
    failures.push(`${name} failed: ${(err as Error).message.split('\n')[0]}`)
  }
}

/** What every benchmark's JSON report begins with: when, where, which commit, its settings, the load. */
export function newReport (settings: unknown): Record<string, unknown> {
  return { startedAt: new Date().toISOString(), machine: machine(), git: gitState(), settings, loadAtStart: load().loadavg1 }
}

export function machine () {
  return { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, platform: `${os.platform()} ${os.release()}` }
}

/** The 1-minute load average, with a note when more is runnable than there are CPUs (check it before starting servers). */
export function load (): { loadavg1: number, note: string } {
  const loadavg1 = os.loadavg()[0]!
  return { loadavg1, note: loadavg1 > os.cpus().length ? ` (busy machine, more than ${os.cpus().length} runnable: the ratios matter, not the absolute rates)` : '' }
}

// ---------------------------------------------------------------------------------------------
// Measuring

export interface RunResult {
  server: string
  /** 0 for warm-up. */
  round: number
  /** Answers per second (all statuses; 2xx only for write runs), over the run's duration. */
  rps: number
  requests: number
  durationS: number
  latencyMeanMs: number
  p50Ms: number
  p99Ms: number
  non2xx: number
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
  /**
   * CPU time the server process used during the run (all its threads; Linux /proc), per answer.
   * Unlike req/s it hardly moves when other processes compete for the CPUs.
   */
  cpuMicrosPerAnswer: number
}

const CLOCK_TICK_MICROS = 1e6 / 100 // USER_HZ is 100 on Linux

/** User + system CPU time of a process so far, in µs (NaN where /proc is not available). */
export function cpuMicros (pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MICROS
  } catch {
    return Number.NaN
  }
}

export function summarise (server: string, round: number, result: autocannon.Result, cpuUsedMicros: number, durationS = result.duration): RunResult {
  const statusCodes: Record<string, number> = {}
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stats.count ?? 0
  const requests = result.requests.total
  return {
    server,
    round,
    rps: requests / durationS,
    requests,
    durationS,
    latencyMeanMs: result.latency.mean,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    cpuMicrosPerAnswer: cpuUsedMicros / requests,
  }
}

/** `connections` connections, pipelining 1, for `seconds`. */
export async function getRun (server: Server, urlPath: string, seconds: number, connections: number, round: number): Promise<RunResult> {
  const cpuBefore = cpuMicros(server.child.pid)
  const result = await autocannon({ url: server.url + urlPath, connections, pipelining: 1, duration: seconds })
  return summarise(server.name, round, result, cpuMicros(server.child.pid) - cpuBefore)
}

/** Per document: 2xx answers and the highest version they reported. */
export type Tally = Map<string, { ok: number, maxVersion: number }>

export interface WriteRunResult extends RunResult {
  conflicts: number
  otherNon2xx: number
}

export const DOC_BODY = [
  'A polished brass hinge for kitchens and workshops. It is sold in pairs and takes a standard 4 mm screw.',
  '',
  '## Specification',
  '',
  '- **Material:** brass, polished',
  '- **Size:** 45 mm',
  '- **Weight:** 80 g',
  '',
  'Pairs well with the oak drawer pull.',
].join('\n')

export interface PutRunOptions {
  /** The documents, one picked at random per request. */
  slugs: string[]
  /** PUTs in all (at least one per connection). */
  amount: number
  connections: number
  /** The `authorization` header (HTTP Basic). */
  authorization: string
  /** Where the 2xx answers are counted per document. */
  tally: Tally
  round: number
}

/**
 * `PUT /api/docs/:slug` with random documents, a fixed number of them (not a duration): autocannon
 * then waits for every answer, so no commit can happen unseen when it stops, and the stored
 * versions must match the 2xx count exactly ({@link checkVersions}). `rps` counts 2xx answers.
 */
export async function putRun (server: Server, options: PutRunOptions): Promise<WriteRunResult> {
  const { slugs, tally } = options
  let edits = 0
  let lastAnswer = 0
  const cpuBefore = cpuMicros(server.child.pid)
  const started = performance.now()
  const result = await autocannon({
    url: server.url,
    connections: options.connections,
    pipelining: 1,
    amount: Math.max(Math.round(options.amount), options.connections),
    sampleInt: 100,
    headers: { authorization: options.authorization, 'content-type': 'application/json' },
    requests: [{
      method: 'PUT',
      setupRequest (request, context) {
        const slug = slugs[Math.floor(Math.random() * slugs.length)]!
        ;(context as { slug?: string }).slug = slug
        edits++
        return { ...request, path: `/api/docs/${slug}`, body: JSON.stringify({ title: `Benchmark edit ${edits}`, body: `${DOC_BODY}\n\nEdit ${edits}.` }) }
      },
      onResponse (status, body, context) {
        lastAnswer = performance.now()
        if (status < 200 || status > 299) return
        const slug = (context as { slug?: string }).slug!
        const entry = tally.get(slug) ?? { ok: 0, maxVersion: 0 }
        entry.ok++
        entry.maxVersion = Math.max(entry.maxVersion, (JSON.parse(body) as { version: number }).version)
        tally.set(slug, entry)
      },
    }],
  })
  const run = summarise(server.name, options.round, result, cpuMicros(server.child.pid) - cpuBefore, (lastAnswer - started) / 1000)
  const conflicts = run.statusCodes['409'] ?? 0
  return { ...run, rps: result['2xx'] / run.durationS, conflicts, otherNon2xx: run.non2xx - conflicts }
}

export interface VersionCheck {
  versionIncrements: number
  answers2xx: number
  mismatchedDocuments: number
  /** A few of them. */
  examples: string[]
  passed: boolean
}

/** Whether each document's stored version rose by exactly its 2xx answers and ended at the highest version answered. */
export function checkVersions (slugs: string[], before: Map<string, number>, after: Map<string, number>, tally: Tally): VersionCheck {
  let increments = 0
  let ok = 0
  const mismatched: string[] = []
  for (const slug of slugs) {
    const added = after.get(slug)! - before.get(slug)!
    const seen = tally.get(slug) ?? { ok: 0, maxVersion: before.get(slug)! }
    increments += added
    ok += seen.ok
    if (added !== seen.ok || (seen.ok > 0 && seen.maxVersion !== after.get(slug))) mismatched.push(slug)
  }
  return { versionIncrements: increments, answers2xx: ok, mismatchedDocuments: mismatched.length, examples: mismatched.slice(0, 3), passed: increments === ok && mismatched.length === 0 }
}

// ---------------------------------------------------------------------------------------------
// Databases

/** Each document's stored version, read straight from the database (sqlite:FILE or postgres://…). */
export async function documentVersions (databaseUrl: string): Promise<Map<string, number>> {
  const rows = await queryDatabase<{ slug: string, version: number }>(databaseUrl, 'select slug, version from document')
  return new Map(rows.map((row) => [row.slug, Number(row.version)]))
}

/** One read-only query on its own connection, closed afterwards. */
export async function queryDatabase<R> (databaseUrl: string, text: string, parameters: unknown[] = []): Promise<R[]> {
  if (databaseUrl.startsWith('sqlite:')) {
    const db = new BetterSqlite3(databaseUrl.slice('sqlite:'.length), { readonly: true, fileMustExist: true })
    try {
      return db.prepare(text).all(...parameters) as R[]
    } finally {
      db.close()
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    return (await client.query(text, parameters)).rows as R[]
  } finally {
    await client.end()
  }
}

/** A statement on the PostgreSQL server as its administrator (create/drop database). */
export async function postgresAdmin (adminUrl: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}

/**
 * Creates a throwaway database `PREFIX_<random>` (optionally a copy of `template`, which nobody
 * may be connected to), dropped at the end (also on failure or Ctrl-C). Returns its URL.
 */
export async function throwawayPostgres (adminUrl: string, prefix = 'quiesce_bench', template?: string): Promise<{ name: string, url: string, drop: () => Promise<void> }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`
  await postgresAdmin(adminUrl, `create database ${name}${template === undefined ? '' : ` template ${template}`}`)
  let dropped = false
  const drop = async () => {
    if (dropped) return
    dropped = true
    await postgresAdmin(adminUrl, `drop database if exists ${name} with (force)`)
    console.log(`dropped PostgreSQL database ${name}`)
  }
  onCleanup(drop)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return { name, url: url.toString(), drop }
}

/** A consistent copy of a SQLite file (the online backup API, so a WAL is included). */
export async function copySqlite (from: string, to: string): Promise<void> {
  mkdirSync(path.dirname(to), { recursive: true })
  const db = new BetterSqlite3(from, { readonly: true, fileMustExist: true })
  try {
    await db.backup(to)
  } finally {
    db.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP from the benchmark process

export function basicAuth (username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
}

export interface HttpAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  /** performance.now() when the status line and headers arrived. */
  headersAt: number
  /** performance.now() when the whole body had arrived. */
  endAt: number
}

/** One request over `agent` (keep-alive, so a client keeps its connection); a JSON body if given. */
export function httpRequest (agent: http.Agent, url: string, method: string, headers: Record<string, string>, body?: unknown): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const request = http.request(url, {
      method,
      agent,
      headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (response) => {
      const headersAt = performance.now()
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8'), headersAt, endAt: performance.now() }))
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end(payload)
  })
}

// ---------------------------------------------------------------------------------------------
// Reporting

/**
 * The end of a benchmark run: the failed checks, the load and the time go into `report`, which
 * is written to bench/results/NAME-<time>.json; the failed checks are printed and make the exit
 * code 1. `note` follows the wall time on the line that names the file.
 */
export function finishReport (name: string, report: Record<string, unknown>, failures: string[], began: number, note = ''): void {
  report.loadAtEnd = load().loadavg1
  report.finishedAt = new Date().toISOString()
  report.failures = failures
  report.wallSeconds = (performance.now() - began) / 1000
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = path.join(RESULTS_DIR, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n')
  console.log(`\nresults: ${path.relative(ROOT, file)} (wall time ${fmt((performance.now() - began) / 1000, 1)} s${note})`)
  if (failures.length > 0) {
    console.log(`FAILED checks:\n  ${failures.join('\n  ')}`)
    process.exitCode = 1
  }
}

/** Nearest-rank percentile (p in 0..100) of the values. */
export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function fmt (value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/** A plain-text table: the first two columns left-aligned, the others right-aligned. */
export function table (header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((row) => row.map(String))]
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)))
  return cells.map((row) => row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd()).join('\n')
}

/** Follows a server's /api/maintenance/events and remembers when each version's `state` event arrived. */
export class StateEvents {
  readonly arrivals = new Map<number, number>()
  readonly #waiters = new Map<number, () => void>()
  readonly #request: http.ClientRequest
  #pending = ''
  #closed = false

  constructor (url: string, authorization: string, onError: (err: Error) => void) {
    this.#request = http.get(`${url}/api/maintenance/events`, { headers: { accept: 'text/event-stream', authorization }, agent: false }, (response) => {
      if (response.statusCode !== 200) {
        onError(new Error(`the event stream answered ${response.statusCode}`))
        response.resume()
        return
      }
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => this.#receive(chunk, performance.now()))
      response.on('end', () => { if (!this.#closed) onError(new Error('the event stream ended')) })
    })
    this.#request.on('error', (err) => { if (!this.#closed) onError(err) })
  }

  #receive (chunk: string, at: number): void {
    this.#pending += chunk
    const events = this.#pending.split('\n\n')
    this.#pending = events.pop()!
    for (const event of events) {
      let id: number | undefined
      let name: string | undefined
      for (const line of event.split('\n')) {
        if (line.startsWith('id:')) id = Number(line.slice(3).trim())
        else if (line.startsWith('event:')) name = line.slice(6).trim()
      }
      if (name !== 'state' || id === undefined || this.arrivals.has(id)) continue
      this.arrivals.set(id, at)
      this.#waiters.get(id)?.()
    }
  }

  /** performance.now() when `version` arrived (at once if it has), or undefined after `timeoutMs`. */
  async arrival (version: number, timeoutMs: number): Promise<number | undefined> {
    if (!this.arrivals.has(version)) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { this.#waiters.delete(version); resolve() }, timeoutMs)
        this.#waiters.set(version, () => { clearTimeout(timer); this.#waiters.delete(version); resolve() })
      })
    }
    return this.arrivals.get(version)
  }

  close (): void {
    this.#closed = true
    this.#request.destroy()
  }
}
