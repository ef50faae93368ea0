/**
 * `npm run bench:reindex`: the scenario Quiesce exists for (issue 4, item 3). A catalog reindex
 * of 5,000 documents (batches of 100, each one unit of work that conflicts when a document of
 * its range changed while it was in flight), run by a manager through POST /api/tasks/reindex
 * and followed through GET /api/tasks/:id every 100 ms, in three scenarios:
 *   (a) idle site;
 *   (b) mode normal while 4 editors (members, HTTP Basic, each its own connection) PUT random
 *       documents as fast as they can;
 *   (c) mode concurrent, switched by the manager (so the reindex runs as the maintainer), under
 *       the same 4 editors, whose writes are refused (503 QUIESCE_READ_ONLY) and who try again
 *       at once (a tight loop);
 *   (d) the same with polite editors: after a refused save each waits BENCH_POLITE_MS before
 *       the next try (a client honouring Retry-After waits longer still: 300 s by default).
 * Targets (issue 10, item 3): (c) at most 1.2 × (a), (d) at most 1.1 × (a).
 * Then the physical limit: the whole catalog rebuilt by one statement in one transaction
 * (DELETE, then INSERT … SELECT from the documents, their markdown indexed as it is, without
 * the text extraction the task does in JavaScript), on a fresh copy: documents/s against (a)'s. (b) is reported as it is: if it cannot finish (the task
 * fails after 50 conflicting tries of one batch, or runs past the time limit and is cancelled),
 * the table shows how far it got.
 *
 * Every scenario runs on a fresh copy of the same seeded database (SQLite: the online backup of
 * the seeded file; PostgreSQL: CREATE DATABASE … TEMPLATE the seeded one) with a fresh server
 * (bench/app-server.ts: the built app, plugin on, production task-runner timings). Each server
 * is warmed the same way first: the editors edit for BENCH_WARMUP seconds in mode normal; in (a)
 * they then stop and the site rests for a second before the reindex starts.
 *
 * Reported per run besides the task's own figures: the editors' answers by status and code and
 * their latency while the reindex ran, the server's CPU time, how busy the whole machine was
 * (the clients share it), and afterwards the catalog entries that do not carry their document's
 * current title: every edit sets a title of its own, so an entry a batch wrote from an older
 * read of a document shows up there (it must be 0).
 *
 * Not part of the test suite. Environment (all optional):
 *   BENCH_DOCS=5000          documents
 *   BENCH_EDITORS=4          editing clients in (b) and (c)
 *   BENCH_SCENARIOS=a,b,c,d  which scenarios, in this order
 *   BENCH_POLITE_MS=250      (d): an editor's pause after a refused save
 *   BENCH_REPEAT=3           run the scenarios this many times (each on a fresh copy); a
 *                            reindex of 5,000 documents takes well under a second, so one
 *                            run says little on a shared machine
 *   BENCH_EDIT_DOCS=N        the editors pick from the first N documents only (a hot spot;
 *                            default: all of them, uniformly)
 *   BENCH_DATABASES=sqlite,postgres   (BENCH_POSTGRES=0 is the same as BENCH_DATABASES=sqlite)
 *   BENCH_TIME_LIMIT=120     seconds before a reindex that has not finished is cancelled
 *   BENCH_WARMUP=1           seconds of edits that warm each fresh server
 *   BENCH_POSTGRES_URL       admin URL (postgres://postgres@127.0.0.1:5432/test); throwaway
 *                            databases quiesce_reindex_<random> are created and dropped
 *   BENCH_CPU_PROF=DIR       run the servers with --cpu-prof, profiles written to DIR when they stop
 *   BENCH_KEEP=1             keep the temporary data directory
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import BetterSqlite3 from 'better-sqlite3'
import pg from 'pg'
import {
  ROOT, DOC_BODY, basicAuth, copySqlite, cpuMicros, describeBuild, ensureBuilt, envNumber, finishReport, fmt, httpRequest, load, median, newReport,
  percentile, queryDatabase, runCli, runMain, runPart, startServer, stopServer, table, temporaryDataDir, throwawayPostgres, type Server,
} from './lib.js'

const SCENARIOS = { a: 'idle', b: 'normal + editors', c: 'concurrent + editors', d: 'concurrent + polite editors' } as const
type Scenario = keyof typeof SCENARIOS
type Kind = 'sqlite' | 'postgres'

const settings = {
  docs: envNumber('BENCH_DOCS', 5000),
  editors: envNumber('BENCH_EDITORS', 4, 0),
  scenarios: (process.env.BENCH_SCENARIOS ?? 'a,b,c,d').split(',').map((s) => s.trim()).filter(Boolean) as Scenario[],
  repeat: envNumber('BENCH_REPEAT', 3),
  editDocs: envNumber('BENCH_EDIT_DOCS', 0, 0),
  politeMs: envNumber('BENCH_POLITE_MS', 250, 0),
  databases: (process.env.BENCH_DATABASES ?? (process.env.BENCH_POSTGRES === '0' ? 'sqlite' : 'sqlite,postgres')).split(',').map((s) => s.trim()).filter(Boolean) as Kind[],
  timeLimitS: envNumber('BENCH_TIME_LIMIT', 120),
  warmupS: envNumber('BENCH_WARMUP', 1, 0),
  pollMs: 100,
  postgresAdminUrl: process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  cpuProfDir: process.env.BENCH_CPU_PROF === undefined || process.env.BENCH_CPU_PROF === '' ? undefined : path.resolve(process.env.BENCH_CPU_PROF),
  keep: process.env.BENCH_KEEP === '1',
}
for (const scenario of settings.scenarios) if (!(scenario in SCENARIOS)) throw new Error(`BENCH_SCENARIOS takes a, b, c and d, not ${scenario}`)
for (const kind of settings.databases) if (kind !== 'sqlite' && kind !== 'postgres') throw new Error(`BENCH_DATABASES takes sqlite and postgres, not ${kind}`)

const APP_SERVER = path.join(ROOT, 'bench/app-server.ts')
const MANAGER = 'benchmanager'
const MANAGER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const MANAGER_AUTH = basicAuth(MANAGER, MANAGER_PASSWORD)
const EDITORS = Array.from({ length: settings.editors }, (_, i) => ({ name: `benchmember${i + 1}`, password: `bench-${randomBytes(12).toString('hex')}` }))

interface TaskJson {
  id: number
  state: string
  done: number
  total: number
  startedAt: string
  finishedAt: string | null
  error: string | null
  batches: number
  conflicts: number
  retries: number
}

interface ScenarioResult {
  database: Kind
  scenario: Scenario
  repeat: number
  state: string
  /** finishedAt − startedAt as the task recorded them. */
  taskMs: number
  /** From sending the POST to the poll that saw the task finished. */
  wallMs: number
  done: number
  total: number
  batches: number
  conflicts: number
  retries: number
  error: string | null
  cancelledAtLimit: boolean
  /** Editors' answers while the reindex ran, by "status code" (e.g. "503 QUIESCE_READ_ONLY"). */
  editorAnswers: Record<string, number>
  editorRequestsPerSecond: number
  /** Editors' answer times while the reindex ran. */
  editorLatencyMs: { p50: number, p99: number, max: number }
  editorErrors: number
  /** Editors' 2xx answers after the switch to concurrent (must be 0). */
  writesAfterSwitch: number
  serverCpuMs: number
  catalogEntries: number
  documents: number
  /** Documents whose catalog entry does not carry their current title (after every edit has been answered). */
  staleEntries: number
  progress: Array<{ atMs: number, done: number, conflicts: number }>
  loadavg1: number
  /** Share of the machine's CPU time that was busy while the reindex ran (all processes, /proc/stat). */
  machineBusy: number
  /** This process (editors and polling) in CPUs while the reindex ran. */
  benchCpus: number
}

const failures: string[] = []
const results: ScenarioResult[] = []
const report = newReport(settings)

const managerAgent = new http.Agent({ keepAlive: true, maxSockets: 2 })

async function api<T> (server: Server, method: string, urlPath: string, body?: unknown): Promise<T> {
  const answer = await httpRequest(managerAgent, server.url + urlPath, method, { authorization: MANAGER_AUTH }, body)
  if (answer.status < 200 || answer.status > 299) throw new Error(`${method} ${urlPath} answered ${answer.status}: ${answer.body}`)
  return JSON.parse(answer.body) as T
}

/** The editing clients: each its own member and keep-alive connection, one PUT after another. */
class Editors {
  answers = new Map<string, number>()
  latencies: number[] = []
  errors = 0
  requests = 0
  writesAfterSwitch = 0
  switchedAt = Number.POSITIVE_INFINITY
  #running = false
  #loops: Array<Promise<void>> = []
  readonly #agents = EDITORS.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }))

  readonly pick: number

  /** `pauseMs`: how long an editor waits after a refused save (0: it tries again at once). */
  constructor (readonly server: Server, readonly slugs: string[], readonly pauseMs = 0) {
    this.pick = settings.editDocs > 0 ? Math.min(settings.editDocs, slugs.length) : slugs.length
  }

  start (): void {
    this.#running = true
    this.#loops = EDITORS.map((editor, i) => this.#loop(basicAuth(editor.name, editor.password), this.#agents[i]!, i))
  }

  /** Counts from now on. */
  reset (): void {
    this.latencies = []
    this.answers = new Map()
    this.errors = 0
    this.requests = 0
  }

  async stop (): Promise<void> {
    this.#running = false
    await Promise.all(this.#loops)
    for (const agent of this.#agents) agent.destroy()
  }

  async #loop (authorization: string, agent: http.Agent, editor: number): Promise<void> {
    let edits = 0
    while (this.#running) {
      const slug = this.slugs[Math.floor(Math.random() * this.pick)]!
      edits++
      const sent = performance.now()
      try {
        const answer = await httpRequest(agent, `${this.server.url}/api/docs/${slug}`, 'PUT', { authorization }, {
          title: `Edited by editor ${editor + 1} (${edits})`,
          body: `${DOC_BODY}\n\nEdit ${edits} by editor ${editor + 1}.`,
        })
        let key = String(answer.status)
        if (answer.status >= 400) {
          try {
            key += ` ${(JSON.parse(answer.body) as { code?: string }).code ?? ''}`
          } catch {}
        }
        this.answers.set(key, (this.answers.get(key) ?? 0) + 1)
        this.latencies.push(answer.endAt - sent)
        if (answer.status >= 200 && answer.status < 300 && sent > this.switchedAt) this.writesAfterSwitch++
        if (answer.status === 503 && this.pauseMs > 0) await sleep(this.pauseMs)
      } catch {
        this.errors++
        await sleep(10)
      }
      this.requests++
    }
  }
}

/**
 * The catalog rebuilt by one statement (after one DELETE) in one transaction: what the database
 * itself takes for the work, without batches, units of work or the text extraction. Seconds.
 */
async function rebuildInOneStatement (kind: Kind, databaseUrl: string): Promise<number> {
  if (kind === 'sqlite') {
    const db = new BetterSqlite3(databaseUrl.slice('sqlite:'.length), { fileMustExist: true })
    try {
      const began = performance.now()
      db.transaction(() => {
        db.prepare('delete from catalog').run()
        db.prepare('insert into catalog (rowid, slug, title, body) select id, slug, title, body from document').run()
      })()
      return (performance.now() - began) / 1000
    } finally {
      db.close()
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const began = performance.now()
    await client.query('begin')
    await client.query('delete from catalog')
    await client.query(`insert into catalog (document_id, slug, title, body, search)
      select id, slug, title, body, setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B') from document`)
    await client.query('commit')
    return (performance.now() - began) / 1000
  } finally {
    await client.end()
  }
}

/** CPU time of the whole machine so far, in clock ticks (Linux /proc/stat): busy and total. */
function machineTicks (): { busy: number, total: number } {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
    const total = fields.slice(0, 8).reduce((sum, n) => sum + n, 0)
    return { busy: total - idle, total }
  } catch {
    return { busy: Number.NaN, total: Number.NaN }
  }
}

async function runScenario (kind: Kind, scenario: Scenario, repeat: number, fresh: () => Promise<{ env: Record<string, string>, databaseUrl: string, dispose: () => Promise<void> }>, slugs: string[]): Promise<void> {
  const { env, databaseUrl, dispose } = await fresh()
  const name = `${kind}-${scenario}${settings.repeat > 1 ? `-${repeat}` : ''}`
  const server = await startServer(name, ['--import', 'tsx', APP_SERVER], { ...env, QUIESCE_INSTANCE_ID: name, BENCH_MAINTENANCE: '1' }, { cpuProfDir: settings.cpuProfDir })
  const editors = new Editors(server, slugs, scenario === 'd' ? settings.politeMs : 0)
  let result: ScenarioResult | undefined
  try {
    // The same warm-up for every scenario: edits in mode normal.
    if (settings.editors > 0 && settings.warmupS > 0) {
      editors.start()
      await sleep(settings.warmupS * 1000)
      if (scenario === 'a') {
        await editors.stop()
        await sleep(1000)
      }
    }
    if (scenario === 'c' || scenario === 'd') {
      const state = await api<{ version: number }>(server, 'GET', '/api/maintenance')
      const switched = await api<{ mode: string }>(server, 'PUT', '/api/maintenance', { mode: 'concurrent', reason: 'catalog reindex (benchmark)', expectedVersion: state.version })
      if (switched.mode !== 'concurrent') throw new Error(`the switch answered mode ${switched.mode}`)
      editors.switchedAt = performance.now()
    }
    if (scenario !== 'a' && settings.editors > 0 && settings.warmupS === 0) editors.start()
    editors.reset()
    const loadavg1 = load().loadavg1
    const cpuBefore = cpuMicros(server.child.pid)
    const machineBefore = machineTicks()
    const benchBefore = process.cpuUsage()
    const began = performance.now()
    const { id } = await api<{ id: number }>(server, 'POST', '/api/tasks/reindex')
    let task: TaskJson
    let cancelledAtLimit = false
    const progress: ScenarioResult['progress'] = []
    for (;;) {
      await sleep(settings.pollMs)
      task = await api<TaskJson>(server, 'GET', `/api/tasks/${id}`)
      const atMs = performance.now() - began
      if (progress.length === 0 || progress.at(-1)!.done !== task.done || progress.at(-1)!.conflicts !== task.conflicts) progress.push({ atMs, done: task.done, conflicts: task.conflicts })
      if (['done', 'failed', 'cancelled'].includes(task.state)) break
      if (!cancelledAtLimit && atMs > settings.timeLimitS * 1000) {
        cancelledAtLimit = true
        console.log(`  ${name}: not finished after ${settings.timeLimitS} s (${task.done}/${task.total}, ${task.conflicts} conflicts): cancelling it`)
        await api(server, 'POST', `/api/tasks/${id}/cancel`)
      }
    }
    const wallMs = performance.now() - began
    const serverCpuMs = (cpuMicros(server.child.pid) - cpuBefore) / 1000
    const machineAfter = machineTicks()
    const benchUsed = process.cpuUsage(benchBefore)
    const latencies = editors.latencies
    const editorRequests = editors.requests
    await editors.stop()
    const counts = await queryDatabase<{ documents: number | string, catalog: number | string }>(databaseUrl, 'select (select count(*) from document) as documents, (select count(*) from catalog) as catalog')
    // Each edit sets a title of its own, so an entry that a batch wrote from an older read shows.
    const stale = await queryDatabase<{ n: number | string }>(databaseUrl, kind === 'sqlite'
      ? 'select count(*) as n from document d left join catalog c on c.rowid = d.id where c.title is not d.title'
      : 'select count(*) as n from document d left join catalog c on c.document_id = d.id where c.title is distinct from d.title')
    result = {
      database: kind,
      scenario,
      repeat,
      state: task.state,
      taskMs: Date.parse(task.finishedAt ?? new Date().toISOString()) - Date.parse(task.startedAt),
      wallMs,
      done: task.done,
      total: task.total,
      batches: task.batches,
      conflicts: task.conflicts,
      retries: task.retries,
      error: task.error,
      cancelledAtLimit,
      editorAnswers: Object.fromEntries([...editors.answers].sort()),
      editorRequestsPerSecond: editorRequests / (wallMs / 1000),
      editorLatencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.length === 0 ? Number.NaN : Math.max(...latencies) },
      editorErrors: editors.errors,
      writesAfterSwitch: editors.writesAfterSwitch,
      serverCpuMs,
      documents: Number(counts[0]!.documents),
      catalogEntries: Number(counts[0]!.catalog),
      staleEntries: Number(stale[0]!.n),
      progress,
      loadavg1,
      machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total),
      benchCpus: (benchUsed.user + benchUsed.system) / 1000 / wallMs,
    }
    results.push(result)
    const answers = Object.entries(result.editorAnswers).map(([status, n]) => `${status} ×${fmt(n)}`).join(', ')
    console.log(`  ${name.padEnd(12)} ${result.state.padEnd(9)} task ${fmt(result.taskMs / 1000, 2)} s, wall ${fmt(wallMs / 1000, 2)} s, ${result.done}/${result.total}, ${result.batches} batches, ${result.conflicts} conflicts, ${result.retries} retries; server CPU ${fmt(serverCpuMs)} ms; machine ${(100 * result.machineBusy).toFixed(0)}% busy, this process ${(100 * result.benchCpus).toFixed(0)}% of a CPU; load ${loadavg1.toFixed(1)}${settings.editors > 0 && scenario !== 'a' ? `; editors ${fmt(result.editorRequestsPerSecond)} req/s, p50 ${fmt(result.editorLatencyMs.p50, 1)} ms, p99 ${fmt(result.editorLatencyMs.p99, 1)} ms, max ${fmt(result.editorLatencyMs.max, 1)} ms: ${answers}${editors.errors > 0 ? `, ${editors.errors} failed` : ''}` : ''}`)
    if (result.error !== null) console.log(`    task error: ${result.error}`)
    if (scenario !== 'b' && result.state !== 'done') failures.push(`${name}: the reindex ended ${result.state}${result.error === null ? '' : `: ${result.error}`}`)
    if (result.state === 'done' && result.catalogEntries !== result.documents) failures.push(`${name}: ${result.catalogEntries} catalog entries for ${result.documents} documents after the reindex`)
    if (result.staleEntries > 0) {
      console.log(`    ${result.staleEntries} catalog entries do not match their document's current title`)
      failures.push(`${name}: ${result.staleEntries} catalog entries are stale (their document's title changed, the entry did not)`)
    }
    if ((scenario === 'c' || scenario === 'd') && result.writesAfterSwitch > 0) failures.push(`${name}: ${result.writesAfterSwitch} edits were saved after the switch to concurrent`)
    if (editors.errors > 0) failures.push(`${name}: ${editors.errors} editor requests failed without an answer`)
  } finally {
    await editors.stop()
    await stopServer(server)
    await dispose()
  }
}

async function main (): Promise<void> {
  const began = performance.now()
  console.log(`quiesce reindex benchmark: node ${process.version}, ${os.cpus().length} CPUs; editors and polling in this process, the server in a child process`)
  console.log(`${fmt(settings.docs)} documents, batches of 100; scenarios ${settings.scenarios.map((s) => `(${s}) ${SCENARIOS[s]}`).join(', ')}; ${settings.editors} editors${settings.editDocs > 0 ? ` on the first ${settings.editDocs} documents only` : ' on random documents'}; ${settings.databases.join(' and ')}; ×${settings.repeat}; time limit ${settings.timeLimitS} s`)
  console.log(describeBuild(report))
  console.log(await ensureBuilt())
  console.log('each scenario: a fresh copy of the seeded database and a fresh server (node --import tsx bench/app-server.ts: the built app with the plugin); warmed by the editors in mode normal first')

  const dataDir = temporaryDataDir('quiesce-bench-reindex-', settings.keep)
  const baseEnv = { HOST: '127.0.0.1', PORT: '0', NODE_ENV: 'production', QUIESCE_LOG_LEVEL: 'warn' }
  let copies = 0
  const limits = new Map<Kind, number>()

  for (const kind of settings.databases) {
    let masterUrl: string
    let fresh: () => Promise<{ env: Record<string, string>, databaseUrl: string, dispose: () => Promise<void> }>
    if (kind === 'sqlite') {
      const master = path.join(dataDir, 'sqlite-master', 'quiesce.sqlite')
      masterUrl = `sqlite:${master}`
      fresh = async () => {
        const dir = path.join(dataDir, `sqlite-${++copies}`)
        const file = path.join(dir, 'quiesce.sqlite')
        await copySqlite(master, file)
        return { env: { ...baseEnv, QUIESCE_DATA_DIR: dir, QUIESCE_DATABASE_URL: `sqlite:${file}` }, databaseUrl: `sqlite:${file}`, dispose: async () => rmSync(dir, { recursive: true, force: true }) }
      }
    } else {
      const master = await throwawayPostgres(settings.postgresAdminUrl, 'quiesce_reindex')
      masterUrl = master.url
      fresh = async () => {
        // A template must have no other connections; the CLI's may take a moment to go.
        for (let attempt = 1; ; attempt++) {
          try {
            const copy = await throwawayPostgres(settings.postgresAdminUrl, 'quiesce_reindex', master.name)
            return { env: { ...baseEnv, QUIESCE_DATA_DIR: path.join(dataDir, `postgres-${++copies}`), QUIESCE_DATABASE_URL: copy.url }, databaseUrl: copy.url, dispose: copy.drop }
          } catch (err) {
            if (attempt >= 10 || !/being accessed by other users/.test((err as Error).message)) throw err
            await sleep(500)
          }
        }
      }
    }
    const env = { ...baseEnv, QUIESCE_DATA_DIR: path.join(dataDir, `${kind}-master`), QUIESCE_DATABASE_URL: masterUrl }
    const seeded = await runCli(['seed', '--docs', String(settings.docs)], env)
    await runCli(['user', 'add', MANAGER, '--role', 'manager'], env, MANAGER_PASSWORD + '\n')
    for (const editor of EDITORS) await runCli(['user', 'add', editor.name, '--role', 'member'], env, editor.password + '\n')
    const slugs = (await queryDatabase<{ slug: string }>(masterUrl, 'select slug from document order by id')).map((row) => row.slug)
    console.log(`\n== ${kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'}: ${seeded.toLowerCase()} (${slugs.length} in all), manager ${MANAGER}, members ${EDITORS.map((e) => e.name).join(', ')} ==`)
    {
      const { databaseUrl, dispose } = await fresh()
      try {
        const seconds = await rebuildInOneStatement(kind, databaseUrl)
        limits.set(kind, slugs.length / seconds)
        console.log(`  the physical limit: one INSERT … SELECT rebuilt ${fmt(slugs.length)} entries in ${fmt(seconds, 2)} s (${fmt(slugs.length / seconds)} documents/s)`)
      } finally {
        await dispose()
      }
    }
    for (let repeat = 1; repeat <= settings.repeat; repeat++) {
      for (const scenario of settings.scenarios) {
        await runPart(failures, `${kind} (${scenario})`, () => runScenario(kind, scenario, repeat, fresh, slugs), '  ')
      }
    }
  }

  // The table, then the ratio (c) / (a) per database and repeat.
  console.log(`\n== results (load at start ${(report.loadAtStart as number).toFixed(1)}, now ${load().loadavg1.toFixed(1)}, ${os.cpus().length} CPUs) ==`)
  const rows = results.map((r) => [
    r.database,
    `(${r.scenario}) ${SCENARIOS[r.scenario]}${settings.repeat > 1 ? ` #${r.repeat}` : ''}`,
    r.cancelledAtLimit ? `${r.state} (limit)` : r.state,
    fmt(r.taskMs / 1000, 2),
    fmt(r.wallMs / 1000, 2),
    `${r.done}/${r.total}`,
    r.batches,
    r.conflicts,
    r.retries,
    fmt(r.serverCpuMs / 1000, 2),
    `${(100 * r.machineBusy).toFixed(0)}%`,
    r.scenario === 'a' ? '-' : fmt(r.editorRequestsPerSecond),
    r.scenario === 'a' ? '-' : `${fmt(r.editorLatencyMs.p50, 1)}/${fmt(r.editorLatencyMs.p99, 1)}`,
    r.scenario === 'a' ? '-' : Object.entries(r.editorAnswers).map(([status, n]) => `${status} ${n}`).join(', '),
    r.staleEntries,
  ])
  console.log(table(['database', 'scenario', 'state', 'task s', 'wall s', 'done/total', 'batches', 'conflicts', 'retries', 'server CPU s', 'machine busy', 'edits req/s', 'edit p50/p99 ms', 'editors\' answers while it ran', 'stale entries'], rows))

  const ratios: Array<{ database: Kind, scenario: Scenario, repeat: number, ratio: number }> = []
  const targets: Array<[Scenario, number]> = [['c', 1.2], ['d', 1.1]]
  const summary: Array<{ database: Kind, measure: string, value: string, target: string, met: boolean | null }> = []
  for (const kind of settings.databases) {
    const find = (scenario: Scenario, repeat: number) => results.find((r) => r.database === kind && r.repeat === repeat && r.scenario === scenario && r.state === 'done')
    for (const [scenario, target] of targets) {
      for (let repeat = 1; repeat <= settings.repeat; repeat++) {
        const a = find('a', repeat)
        const loaded = find(scenario, repeat)
        if (a !== undefined && loaded !== undefined) ratios.push({ database: kind, scenario, repeat, ratio: loaded.taskMs / a.taskMs })
      }
      const mine = ratios.filter((r) => r.database === kind && r.scenario === scenario).map((r) => r.ratio)
      if (mine.length === 0) continue
      const met = median(mine) <= target
      console.log(`${kind}: (${scenario}) / (a) task time${mine.length > 1 ? ` per repeat ${mine.map((r) => r.toFixed(2)).join(', ')}; median` : ''} ${median(mine).toFixed(2)} → target ≤ ${target} ${met ? 'MET' : 'NOT MET'}`)
      summary.push({ database: kind, measure: `(${scenario}) ${SCENARIOS[scenario]} / (a) idle, task time (median of ${mine.length})`, value: median(mine).toFixed(2), target: `≤ ${target}`, met })
    }
    const idle = results.filter((r) => r.database === kind && r.scenario === 'a' && r.state === 'done').map((r) => r.done / (r.taskMs / 1000))
    const limit = limits.get(kind)
    if (idle.length > 0 && limit !== undefined) {
      console.log(`${kind}: the reindex task, idle, ${fmt(median(idle))} documents/s; one INSERT … SELECT ${fmt(limit)} documents/s (${(median(idle) / limit).toFixed(2)} of the physical limit)`)
      summary.push({ database: kind, measure: 'idle reindex / one INSERT … SELECT, documents/s', value: `${fmt(median(idle))} / ${fmt(limit)} = ${(median(idle) / limit).toFixed(2)}`, target: '', met: null })
    }
    for (const b of results.filter((r) => r.database === kind && r.scenario === 'b')) {
      const attempts = b.batches + b.conflicts
      const editsPerSecond = (Object.entries(b.editorAnswers).filter(([status]) => status.startsWith('2')).reduce((sum, [, n]) => sum + n, 0)) / (b.wallMs / 1000)
      const msPerAttempt = b.taskMs / Math.max(attempts, 1)
      // Expected edits landing in one batch's 100-document range during one attempt, if the whole attempt were the window.
      const lambda = editsPerSecond * (100 / (settings.editDocs > 0 ? Math.min(settings.editDocs, settings.docs) : settings.docs)) * (msPerAttempt / 1000)
      console.log(`${kind} (b): ${b.state}${b.cancelledAtLimit ? ' (cancelled at the time limit)' : ''}, ${b.done}/${b.total} documents, ${b.conflicts} conflicts in ${attempts} batch attempts (${(100 * b.conflicts / Math.max(attempts, 1)).toFixed(1)}%); ${fmt(editsPerSecond)} saved edits/s, ${fmt(msPerAttempt, 1)} ms per attempt → ≈ ${lambda.toFixed(2)} edits per touched batch range per attempt, P(conflict) ≤ ${(100 * (1 - Math.exp(-lambda))).toFixed(0)}% if the whole attempt were exposed`)
    }
  }

  console.log(`\n== summary ==\n${table(['database', 'measure', 'value', 'target', ''], summary.map((row) => [row.database, row.measure, row.value, row.target, row.met === null ? '' : row.met ? 'MET' : 'NOT MET']))}`)
  report.results = results
  report.ratios = ratios
  report.limits = Object.fromEntries(limits)
  report.summary = summary
  finishReport('reindex', report, failures, began)
}

await runMain(main)
