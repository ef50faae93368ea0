/**
 * `npm run bench`: document throughput of the built app, as ratios against baselines measured
 * in the same run (servers in child processes, autocannon here, rounds interleaved).
 *
 * 1. Anonymous `GET /docs/:slug` of the full app (dist/, as shipped) against a ceiling server
 *    (bench/ceiling-server.ts) that renders the same page from the same SQLite row.
 * 2. `PUT /api/docs/:slug` commits per second on SQLite and on PostgreSQL (HTTP Basic, a
 *    member), random documents; afterwards the stored versions must add up to the 2xx answers.
 *
 * Not part of the test suite. Environment (all optional):
 *   BENCH_DURATION=8      seconds per measured round and server
 *   BENCH_ROUNDS=3        measured rounds (the order of servers alternates between rounds)
 *   BENCH_WARMUP=3        seconds of warm-up per server
 *   BENCH_CONNECTIONS=10  autocannon connections (pipelining 1)
 *   BENCH_WRITE_DOCS=1000 documents the PUTs pick from at random
 *   BENCH_ONLY=read|write only one part
 *   BENCH_POSTGRES=0      skip PostgreSQL
 *   BENCH_POSTGRES_URL    admin URL (postgres://postgres@127.0.0.1:5432/test); a throwaway
 *                         database quiesce_bench_<random> is created on it and dropped at the end
 *   BENCH_CPU_PROF=DIR    run the servers with --cpu-prof, profiles written to DIR when they stop
 *   BENCH_KEEP=1          keep the temporary data directory
 */
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import BetterSqlite3 from 'better-sqlite3'
import {
  APP_BIN, ROOT, basicAuth, checkVersions, describeBuild, documentVersions, ensureBuilt, envNumber, finishReport, fmt, getRun, load, median, newReport,
  putRun, runCli, runMain, runPart, startServer, stopServer, table, temporaryDataDir, throwawayPostgres, type RunResult, type Server, type Tally,
  type WriteRunResult,
} from './lib.js'

const settings = {
  duration: envNumber('BENCH_DURATION', 8),
  rounds: envNumber('BENCH_ROUNDS', 3),
  warmup: envNumber('BENCH_WARMUP', 3),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  writeDocs: envNumber('BENCH_WRITE_DOCS', 1000),
  only: process.env.BENCH_ONLY ?? 'all',
  postgres: process.env.BENCH_POSTGRES !== '0',
  postgresAdminUrl: process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  cpuProfDir: process.env.BENCH_CPU_PROF === undefined || process.env.BENCH_CPU_PROF === '' ? undefined : path.resolve(process.env.BENCH_CPU_PROF),
  keep: process.env.BENCH_KEEP === '1',
}
if (!['all', 'read', 'write'].includes(settings.only)) throw new Error('BENCH_ONLY must be read or write')
const runReads = settings.only !== 'write'
const runWrites = settings.only !== 'read'
const profiling = { cpuProfDir: settings.cpuProfDir }

const MEMBER = 'benchmember'
const MEMBER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const BASIC = basicAuth(MEMBER, MEMBER_PASSWORD)

// ---------------------------------------------------------------------------------------------
// Reporting

function runRow (run: RunResult | WriteRunResult, label = 'req/s'): Array<string | number> {
  const write = 'conflicts' in run
  return [
    run.round === 0 ? 'warm-up' : String(run.round),
    run.server,
    `${fmt(run.rps)} ${label}`,
    fmt(run.requests),
    fmt(run.latencyMeanMs, 2),
    run.p50Ms,
    run.p99Ms,
    write ? run.conflicts : run.non2xx,
    write ? run.otherNon2xx : '-',
    run.errors,
    fmt(run.cpuMicrosPerAnswer),
  ]
}
const RUN_HEADER = ['round', 'server', 'rate', 'answers', 'mean ms', 'p50 ms', 'p99 ms', 'non-2xx|409', 'other', 'errors', 'server CPU µs/answer']

// ---------------------------------------------------------------------------------------------
// The run

const failures: string[] = []
const report = newReport({ ...settings, pipelining: 1 })

async function main (): Promise<void> {
  const began = performance.now()
  console.log(`quiesce docs throughput: node ${process.version}, ${os.cpus().length} CPUs; autocannon in this process, each server in its own child process`)
  console.log(`${settings.connections} connections, pipelining 1; warm-up ${settings.warmup} s per server, then ${settings.rounds} alternating rounds of ${settings.duration} s`)
  console.log(describeBuild(report))
  console.log(await ensureBuilt())

  const dataDir = temporaryDataDir('quiesce-bench-', settings.keep)
  const sqliteFile = path.join(dataDir, 'sqlite', 'quiesce.sqlite')
  const sqliteEnv = {
    HOST: '127.0.0.1',
    PORT: '0',
    NODE_ENV: 'production',
    QUIESCE_DATA_DIR: path.join(dataDir, 'sqlite'),
    QUIESCE_DATABASE_URL: `sqlite:${sqliteFile}`,
    QUIESCE_LOG_LEVEL: 'warn',
  }
  const docCount = Math.max(settings.writeDocs, 1)
  console.log(`setup: SQLite ${sqliteFile}: ${await runCli(['seed', '--docs', String(docCount)], sqliteEnv)}, ${await runCli(['user', 'add', MEMBER, '--role', 'member'], sqliteEnv, MEMBER_PASSWORD + '\n')}`)
  const sqliteSlugs = (() => {
    const db = new BetterSqlite3(sqliteFile, { readonly: true })
    try {
      return (db.prepare('select slug from document order by id limit ?').pluck().all(docCount) as string[])
    } finally {
      db.close()
    }
  })()
  const appCommand = `node dist/app/cli/bin.js serve with NODE_ENV=production QUIESCE_LOG_LEVEL=warn${settings.cpuProfDir === undefined ? '' : ' --cpu-prof'}`
  const sqliteApp = await startServer('app-sqlite', [APP_BIN, 'serve'], sqliteEnv, profiling)

  const part = (name: string, run: () => Promise<void>) => runPart(failures, `${name} part`, run)
  if (runReads) await part('read', () => readPart(sqliteApp, sqliteFile, sqliteSlugs[0]!, appCommand))
  if (runWrites) await part('write', () => writePart(sqliteApp, sqliteSlugs, sqliteEnv, dataDir, appCommand))

  const logLines = { 'app-sqlite': sqliteApp.logLines, ...(report.write as { appLogLines?: Record<string, number> } | undefined)?.appLogLines }
  report.appLogLines = logLines
  console.log(`\napp log lines (level warn and above) while measured: ${Object.entries(logLines).map(([name, lines]) => `${name} ${lines}`).join(', ')}`)
  finishReport('docs-throughput', report, failures, began, `; load now ${load().loadavg1.toFixed(1)}, this benchmark included`)
}

async function readPart (app: Server, sqliteFile: string, slug: string, appCommand: string): Promise<void> {
  const ceiling = await startServer('ceiling', ['--import', 'tsx', path.join(ROOT, 'bench/ceiling-server.ts')], {
    HOST: '127.0.0.1',
    PORT: '0',
    NODE_ENV: 'production',
    BENCH_DB_FILE: sqliteFile,
  }, profiling)
  const urlPath = `/docs/${slug}`
  console.log(`\n== GET ${urlPath} (anonymous) ==`)
  console.log(`app:     ${appCommand} (SQLite)`)
  console.log('ceiling: bench/ceiling-server.ts: bare Fastify, same views through @fastify/view + eta (production), same row via a read-only better-sqlite3 statement prepared once')

  const [appPage, ceilingPage] = await Promise.all([fetch(app.url + urlPath), fetch(ceiling.url + urlPath)])
  const [appHtml, ceilingHtml] = await Promise.all([appPage.text(), ceilingPage.text()])
  const samePage = appPage.status === 200 && ceilingPage.status === 200 && appHtml === ceilingHtml
  console.log(`same page: ${samePage ? 'yes' : 'NO'} (app ${appPage.status}, ${appHtml.length} chars of HTML; ceiling ${ceilingPage.status}, ${ceilingHtml.length} chars)`)
  if (!samePage) failures.push('the ceiling server does not render the same page as the app')

  const runs: RunResult[] = []
  const servers = [app, ceiling]
  for (const server of servers) runs.push(await getRun(server, urlPath, settings.warmup, settings.connections, 0))
  for (let round = 1; round <= settings.rounds; round++) {
    for (const server of round % 2 === 1 ? servers : [...servers].reverse()) {
      const run = await getRun(server, urlPath, settings.duration, settings.connections, round)
      runs.push(run)
      console.log(`  round ${round} ${server.name.padEnd(10)} ${fmt(run.rps).padStart(7)} req/s  p50 ${run.p50Ms} ms  p99 ${run.p99Ms} ms  non-2xx ${run.non2xx}  errors ${run.errors}  CPU ${fmt(run.cpuMicrosPerAnswer)} µs/answer`)
    }
  }
  await stopServer(ceiling)

  const measured = runs.filter((run) => run.round > 0)
  const find = (name: string, round: number) => measured.find((run) => run.server === name && run.round === round)!
  const ratios = Array.from({ length: settings.rounds }, (_, i) => find(app.name, i + 1).rps / find(ceiling.name, i + 1).rps)
  const ratio = median(ratios)
  // The same ratio from the servers' CPU time per answer: steadier when other work shares the CPUs.
  const cpuRatios = Array.from({ length: settings.rounds }, (_, i) => find(ceiling.name, i + 1).cpuMicrosPerAnswer / find(app.name, i + 1).cpuMicrosPerAnswer)
  const cpuRatio = median(cpuRatios)
  const non2xx = runs.reduce((sum, run) => sum + run.non2xx + run.errors, 0)
  if (non2xx > 0) failures.push(`GET ${urlPath}: ${non2xx} non-2xx answers or errors`)
  const medianOf = (name: string, pick: (run: RunResult) => number) => median(measured.filter((run) => run.server === name).map(pick))

  console.log('\n' + table(RUN_HEADER, runs.map((run) => runRow(run))))
  console.log(`\napp / ceiling req/s per round: ${ratios.map((r) => r.toFixed(3)).join(', ')}; median ${ratio.toFixed(3)} → target ≥ 0.5 ${ratio >= 0.5 ? 'MET' : 'NOT MET'}`)
  console.log(`ceiling / app server CPU per answer: ${cpuRatios.map((r) => r.toFixed(3)).join(', ')}; median ${cpuRatio.toFixed(3)} (app ${fmt(medianOf(app.name, (r) => r.cpuMicrosPerAnswer))} µs, ceiling ${fmt(medianOf(ceiling.name, (r) => r.cpuMicrosPerAnswer))} µs)`)
  console.log(`median: app ${fmt(medianOf(app.name, (r) => r.rps))} req/s p50 ${medianOf(app.name, (r) => r.p50Ms)} ms p99 ${medianOf(app.name, (r) => r.p99Ms)} ms; ceiling ${fmt(medianOf(ceiling.name, (r) => r.rps))} req/s p50 ${medianOf(ceiling.name, (r) => r.p50Ms)} ms p99 ${medianOf(ceiling.name, (r) => r.p99Ms)} ms; non-2xx + errors ${non2xx}`)
  report.read = { path: urlPath, app: appCommand, samePage, htmlChars: appHtml.length, runs, ratios, medianRatio: ratio, cpuRatios, medianCpuRatio: cpuRatio, target: 0.5, targetMet: ratio >= 0.5 }
}

async function writePart (sqliteApp: Server, slugs: string[], sqliteEnv: Record<string, string>, dataDir: string, appCommand: string): Promise<void> {
  const targets: Array<{ server: Server, databaseUrl: string }> = [{ server: sqliteApp, databaseUrl: sqliteEnv.QUIESCE_DATABASE_URL! }]

  if (settings.postgres) {
    const database = await throwawayPostgres(settings.postgresAdminUrl)
    const postgresEnv = { ...sqliteEnv, QUIESCE_DATA_DIR: path.join(dataDir, 'postgres'), QUIESCE_DATABASE_URL: database.url }
    console.log(`\nsetup: PostgreSQL database ${database.name}: ${await runCli(['seed', '--docs', String(slugs.length)], postgresEnv)}, ${await runCli(['user', 'add', MEMBER, '--role', 'member'], postgresEnv, MEMBER_PASSWORD + '\n')}`)
    const postgresApp = await startServer('app-postgres', [APP_BIN, 'serve'], postgresEnv, profiling)
    targets.push({ server: postgresApp, databaseUrl: database.url })
  }

  console.log(`\n== PUT /api/docs/:slug (HTTP Basic, member "${MEMBER}"), each request a random one of ${slugs.length} documents ==`)
  console.log(`app: ${appCommand}; a run is a fixed number of PUTs sized from the rates so far (~${settings.duration} s), so autocannon waits for every answer`)

  const tallies = new Map(targets.map((target) => [target.server.name, new Map() as Tally]))
  const before = new Map<string, Map<string, number>>()
  for (const target of targets) before.set(target.server.name, await documentVersions(target.databaseUrl))
  const rates = new Map<string, number[]>()
  const runs: WriteRunResult[] = []
  for (const { server } of targets) {
    // Warm-up: a short calibration, then `warmup` seconds' worth.
    const put = (amount: number, round: number) => putRun(server, { slugs, amount, connections: settings.connections, authorization: BASIC, tally: tallies.get(server.name)!, round })
    const probe = await put(settings.connections * 30, 0)
    const warm = await put(probe.rps * settings.warmup, 0)
    runs.push(warm)
    rates.set(server.name, [warm.rps])
  }
  for (let round = 1; round <= settings.rounds; round++) {
    for (const { server } of round % 2 === 1 ? targets : [...targets].reverse()) {
      const run = await putRun(server, { slugs, amount: median(rates.get(server.name)!) * settings.duration, connections: settings.connections, authorization: BASIC, tally: tallies.get(server.name)!, round })
      rates.get(server.name)!.push(run.rps)
      runs.push(run)
      console.log(`  round ${round} ${server.name.padEnd(12)} ${fmt(run.rps).padStart(6)} commits/s  p50 ${run.p50Ms} ms  p99 ${run.p99Ms} ms  409 ${run.conflicts}  other non-2xx ${run.otherNon2xx}  errors ${run.errors}`)
    }
  }

  console.log('\n' + table(RUN_HEADER, runs.map((run) => runRow(run, 'commits/s'))))
  console.log('(warm-up rows show the second warm-up run only, the checks below count every PUT; server CPU is the Node process, for PostgreSQL without the database server\'s own)')

  const checks: Record<string, unknown> = {}
  for (const target of targets) {
    const name = target.server.name
    const check = checkVersions(slugs, before.get(name)!, await documentVersions(target.databaseUrl), tallies.get(name)!)
    console.log(`check ${name}: stored versions rose by ${fmt(check.versionIncrements)}, 2xx answers ${fmt(check.answers2xx)}; documents whose count or last version differ: ${check.mismatchedDocuments} → ${check.passed ? 'OK' : 'MISMATCH'}`)
    if (!check.passed) failures.push(`${name}: versions rose by ${check.versionIncrements} but there were ${check.answers2xx} 2xx answers (${check.mismatchedDocuments} documents differ, e.g. ${check.examples.join(', ')})`)
    const bad = runs.filter((run) => run.server === name).reduce((sum, run) => sum + run.otherNon2xx + run.errors, 0)
    if (bad > 0) failures.push(`${name}: ${bad} PUTs answered with a non-2xx other than 409, or failed`)
    checks[name] = check
  }

  const summary: Record<string, unknown> = {}
  for (const { server } of targets) {
    const mine = runs.filter((run) => run.server === server.name && run.round > 0)
    summary[server.name] = { medianCommitsPerSecond: median(mine.map((r) => r.rps)), medianP50Ms: median(mine.map((r) => r.p50Ms)), medianP99Ms: median(mine.map((r) => r.p99Ms)) }
  }
  if (targets.length === 2) {
    const rate = (name: string, round: number) => runs.find((run) => run.server === name && run.round === round)!.rps
    const ratios = Array.from({ length: settings.rounds }, (_, i) => rate('app-postgres', i + 1) / rate('app-sqlite', i + 1))
    summary.postgresOverSqlite = { ratios, median: median(ratios) }
    console.log(`PostgreSQL / SQLite commits per round: ${ratios.map((r) => r.toFixed(3)).join(', ')}; median ${median(ratios).toFixed(3)}`)
  }
  for (const [name, s] of Object.entries(summary)) {
    if (name.startsWith('app-')) {
      const m = s as { medianCommitsPerSecond: number, medianP50Ms: number, medianP99Ms: number }
      console.log(`median ${name}: ${fmt(m.medianCommitsPerSecond)} commits/s, p50 ${m.medianP50Ms} ms, p99 ${m.medianP99Ms} ms`)
    }
  }
  const logLines = Object.fromEntries(targets.map((target) => [target.server.name, target.server.logLines]))
  report.write = { documents: slugs.length, app: appCommand, runs, checks, summary, appLogLines: logLines }
}

await runMain(main)
