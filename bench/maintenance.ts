/**
 * `npm run bench:maintenance`: what the maintenance plugin costs, and how fast a mode change
 * reaches another instance (issue 3, item 11). Servers are child processes running the built
 * app (dist/) through bench/app-server.ts, the same script for every variant; only
 * BENCH_MAINTENANCE=0 (`buildApp({ maintenance: false })`, the baseline) differs. Ratios are
 * measured in this run, with the servers' order rotating between rounds to cancel drift.
 *
 * 1. gate: anonymous `GET /docs/:slug` on SQLite, three servers: the plugin in mode normal, the
 *    plugin in mode concurrent (switched through the API first; the page then shows the banner),
 *    and the app without the plugin. The mode is shared through the database, so the concurrent
 *    server runs on a byte copy of the same SQLite file; the other two share the original.
 *    Target: each plugin variant ≥ 0.97 × the baseline's req/s.
 * 1b. gate-cpu: the same page and the same four apps (plugin-normal, plugin-concurrent,
 *    without-plugin, without-plugin-2 for the A/A pair), built from dist/ in this one process and
 *    answering `inject()` in interleaved batches (bench/in-process.ts): CPU µs per request, which
 *    another process's load hardly moves. Targets: without / plugin ≥ 0.99 (normal) and ≥ 0.98
 *    (concurrent), and the difference within the A/A pair's spread.
 *    (Instruction counts were tried too: under callgrind, two runs of the same build and the same
 *    requests differed by 20 % per request, V8's JIT and GC working on threads of their own;
 *    with --predictable the start alone still varied by 0.5 %: no steadier than this.)
 * 2. commit: `PUT /api/docs/:slug` (HTTP Basic, a member, random documents, fixed request counts)
 *    with the plugin (mode normal: its commit guard re-reads the state inside every commit
 *    transaction) against without, on SQLite and PostgreSQL; afterwards the stored versions must
 *    add up to the 2xx answers. Target ≥ 0.95.
 * 3. propagation: instances A and B (separate processes) on one database; this process follows
 *    B's /api/maintenance/events as a manager and switches the mode on A (normal ↔ concurrent,
 *    expectedVersion = current), one change at a time; for each, the time from A's answer (its
 *    status line arriving here) to B's `state` event with the new version (B sends it when it
 *    applies the change). Targets: p99 < 100 ms on PostgreSQL, < 250 ms on SQLite.
 *
 * Not part of the test suite. Environment (all optional):
 *   BENCH_DURATION=2       seconds per measured round and server (gate, commit)
 *   BENCH_ROUNDS=10        measured rounds in all (many short rounds: on a shared machine a
 *                          burst of someone else's work then spoils one round, and the median
 *                          drops it)
 *   BENCH_GENERATIONS=2    fresh server processes this many times, the rounds shared among
 *                          them: two processes of the same build can differ by a few per cent
 *                          for the whole of their lives (see BENCH_GATE_AA)
 *   BENCH_WARMUP=2         seconds of warm-up per server
 *   BENCH_CONNECTIONS=10   autocannon connections (pipelining 1)
 *   BENCH_WRITE_DOCS=1000  documents in the database (the PUTs pick one at random)
 *   BENCH_CHANGES=100      mode changes per database (propagation)
 *   BENCH_PAUSE_MS=30      pause after each change: this plus a random 0–30 ms, so the changes
 *                          do not fall into step with SQLite's 50 ms polling
 *   BENCH_GATE_AA=1        gate: a second baseline server as well (without-plugin-2, on the
 *                          same file), whose ratio to the first shows the noise floor
 *   BENCH_CPU_ROUNDS=10    gate-cpu: rounds (each app's figure per round: the median of its batches)
 *   BENCH_CPU_BATCHES=30   gate-cpu: batches per app per round
 *   BENCH_CPU_BATCH=100    gate-cpu: requests per batch
 *   BENCH_ONLY=gate,gate-cpu,commit,propagation   the parts to run (comma-separated)
 *   BENCH_DATABASES=sqlite,postgres   where commit and propagation run (the gate is SQLite's);
 *                          BENCH_POSTGRES=0 is the same as BENCH_DATABASES=sqlite
 *   BENCH_POSTGRES_URL     admin URL (postgres://postgres@127.0.0.1:5432/test); a throwaway
 *                          database quiesce_bench_<random> is created on it and dropped at the end
 *   BENCH_CPU_PROF=DIR     run the servers with --cpu-prof, profiles written to DIR when they stop
 *   BENCH_KEEP=1           keep the temporary data directory
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import type * as AppModule from '../app/app.js'
import type * as ConfigModule from '../app/config.js'
import type * as DatabaseModule from '../app/db/database.js'
import { cpuPerRequest, type InProcessApp } from './in-process.js'
import {
  ROOT, basicAuth, checkVersions, copySqlite, cpuMicros, describeBuild, documentVersions, ensureBuilt, envNumber, finishReport, fmt, getRun, httpRequest,
  load, median, newReport, percentile, putRun, queryDatabase, runCli, runMain, runPart, startServer, StateEvents, stopServer, table, temporaryDataDir,
  throwawayPostgres, type RunResult, type Server, type Tally, type VersionCheck, type WriteRunResult,
} from './lib.js'

const PARTS = ['gate', 'gate-cpu', 'commit', 'propagation'] as const
type Part = typeof PARTS[number]

const settings = {
  duration: envNumber('BENCH_DURATION', 2),
  rounds: envNumber('BENCH_ROUNDS', 10),
  generations: envNumber('BENCH_GENERATIONS', 2),
  warmup: envNumber('BENCH_WARMUP', 2),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  writeDocs: envNumber('BENCH_WRITE_DOCS', 1000),
  changes: envNumber('BENCH_CHANGES', 100),
  pauseMs: envNumber('BENCH_PAUSE_MS', 30, 0),
  gateAA: process.env.BENCH_GATE_AA === '1',
  cpuRounds: envNumber('BENCH_CPU_ROUNDS', 10),
  cpuBatches: envNumber('BENCH_CPU_BATCHES', 30),
  cpuBatch: envNumber('BENCH_CPU_BATCH', 100),
  only: (process.env.BENCH_ONLY ?? PARTS.join(',')).split(',').map((part) => part.trim()).filter(Boolean),
  postgres: process.env.BENCH_POSTGRES !== '0' && (process.env.BENCH_DATABASES ?? 'postgres').includes('postgres'),
  sqlite: (process.env.BENCH_DATABASES ?? 'sqlite').includes('sqlite'),
  postgresAdminUrl: process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  cpuProfDir: process.env.BENCH_CPU_PROF === undefined || process.env.BENCH_CPU_PROF === '' ? undefined : path.resolve(process.env.BENCH_CPU_PROF),
  keep: process.env.BENCH_KEEP === '1',
}
for (const part of settings.only) if (!PARTS.includes(part as Part)) throw new Error(`BENCH_ONLY takes ${PARTS.join(', ')} (comma-separated), not ${part}`)
const runs = (part: Part) => settings.only.includes(part)
/** Measured rounds in generation `generation` (1-based): the rounds shared out, the first ones taking the rest. */
const roundsPer = (generation: number) => Math.floor(settings.rounds / settings.generations) + (generation <= settings.rounds % settings.generations ? 1 : 0)
const profiling = { cpuProfDir: settings.cpuProfDir }

const APP_SERVER = path.join(ROOT, 'bench/app-server.ts')
const APP_COMMAND = `node --import tsx bench/app-server.ts (buildApp from dist/, logger level warn, NODE_ENV=production; BENCH_MAINTENANCE=0 for the baseline)${settings.cpuProfDir === undefined ? '' : ' with --cpu-prof'}`
const MANAGER = 'benchmanager'
const MEMBER = 'benchmember'
const MANAGER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const MEMBER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const MANAGER_AUTH = basicAuth(MANAGER, MANAGER_PASSWORD)
const MEMBER_AUTH = basicAuth(MEMBER, MEMBER_PASSWORD)

interface Target {
  kind: 'sqlite' | 'postgres'
  env: Record<string, string>
  databaseUrl: string
  slugs: string[]
}

const failures: string[] = []
const summary: Array<{ part: Part, database: string, measure: string, value: string, target: string, met: boolean | null }> = []
const report = newReport({ ...settings, pipelining: 1 })

function startApp (name: string, target: Target, withPlugin: boolean, extraEnv: Record<string, string> = {}): Promise<Server> {
  return startServer(name, ['--import', 'tsx', APP_SERVER], { ...target.env, QUIESCE_INSTANCE_ID: name, BENCH_MAINTENANCE: withPlugin ? '1' : '0', ...extraEnv }, profiling)
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })

async function changeMode (server: Server, mode: 'normal' | 'concurrent', expectedVersion: number) {
  const answer = await httpRequest(agent, `${server.url}/api/maintenance`, 'PUT', { authorization: MANAGER_AUTH }, { mode, reason: 'benchmark', expectedVersion })
  if (answer.status !== 200) throw new Error(`${server.name}: PUT /api/maintenance ${mode} answered ${answer.status}: ${answer.body}`)
  return { ...answer, state: JSON.parse(answer.body) as { mode: string, version: number } }
}

async function currentVersion (server: Server): Promise<number> {
  const answer = await httpRequest(agent, `${server.url}/api/maintenance`, 'GET', { authorization: MANAGER_AUTH })
  if (answer.status !== 200) throw new Error(`${server.name}: GET /api/maintenance answered ${answer.status}`)
  return (JSON.parse(answer.body) as { version: number }).version
}

/** Rotates the order each round (A,B,C / C,A,B / B,C,A / …) so every server takes every position. */
function rotation<T> (items: T[], round: number): T[] {
  const shift = (round - 1) % items.length
  return shift === 0 ? [...items] : [...items.slice(items.length - shift), ...items.slice(0, items.length - shift)]
}

function runRow (run: RunResult | WriteRunResult, label: string): Array<string | number> {
  const write = 'conflicts' in run
  return [
    run.round === 0 ? 'warm-up' : String(run.round),
    run.server,
    `${fmt(run.rps)} ${label}`,
    fmt(run.requests),
    run.p50Ms,
    run.p99Ms,
    write ? run.conflicts : run.non2xx,
    write ? run.otherNon2xx : '-',
    run.errors,
    fmt(run.cpuMicrosPerAnswer),
  ]
}
const RUN_HEADER = ['round', 'server', 'rate', 'answers', 'p50 ms', 'p99 ms', 'non-2xx|409', 'other', 'errors', 'server CPU µs/answer']

// ---------------------------------------------------------------------------------------------
// 1. The gate

async function gatePart (sqlite: Target, dataDir: string): Promise<void> {
  const file = sqlite.databaseUrl.slice('sqlite:'.length)
  const copy = path.join(dataDir, 'sqlite-concurrent', 'quiesce.sqlite')
  await copySqlite(file, copy)
  const copyTarget: Target = { ...sqlite, env: { ...sqlite.env, QUIESCE_DATA_DIR: path.dirname(copy), QUIESCE_DATABASE_URL: `sqlite:${copy}` }, databaseUrl: `sqlite:${copy}` }
  const urlPath = `/docs/${sqlite.slugs[0]}`
  console.log(`\n== gate: GET ${urlPath} (anonymous), SQLite ==`)
  console.log(`servers: ${APP_COMMAND}`)
  console.log(`  plugin-normal and without-plugin${settings.gateAA ? ' (and without-plugin-2)' : ''} share ${path.relative(dataDir, file)}; plugin-concurrent runs on a copy (${path.relative(dataDir, copy)}), switched to concurrent through PUT /api/maintenance`)
  console.log(`  ${settings.generations} generation${settings.generations === 1 ? '' : 's'} of server processes (fresh processes, ${roundsPer(1)} rounds each): one process alone can be a few per cent faster or slower than another of the same build`)

  const all: RunResult[] = []
  let pages: Array<{ server: string, status: number, mode: string | null, html: string }> = []
  let names: string[] = []
  for (let generation = 1, round = 0; generation <= settings.generations; generation++) {
    const normal = await startApp('plugin-normal', sqlite, true)
    const concurrent = await startApp('plugin-concurrent', copyTarget, true)
    const without = await startApp('without-plugin', sqlite, false)
    const servers = [normal, concurrent, without]
    const twin = settings.gateAA ? await startApp('without-plugin-2', sqlite, false) : undefined
    if (twin !== undefined) servers.push(twin)
    names = servers.map((server) => server.name)
    try {
      if (generation === 1) {
        const switched = await changeMode(concurrent, 'concurrent', await currentVersion(concurrent))
        // The copy's state is its own: the original must still be normal.
        if ((await currentVersion(normal)) !== switched.state.version - 1) failures.push('gate: the normal server\'s state moved when the copy was switched')
        pages = await Promise.all(servers.map(async (server) => {
          const answer = await fetch(server.url + urlPath)
          return { server: server.name, status: answer.status, mode: answer.headers.get('quiesce-mode'), html: await answer.text() }
        }))
        for (const page of pages) console.log(`  ${page.server.padEnd(18)} ${page.status}, Quiesce-Mode ${page.mode ?? '(none)'}, ${page.html.length} chars of HTML`)
        console.log(`  plugin-normal renders the same page as without-plugin: ${pages[0]!.html === pages[2]!.html ? 'yes' : 'NO'}; plugin-concurrent's shows the banner (${pages[1]!.html.length - pages[2]!.html.length} more chars)`)
        if (pages.some((page) => page.status !== 200)) failures.push('gate: a server did not answer the page with 200')
        if (pages[1]!.mode !== 'concurrent') failures.push('gate: the concurrent server does not say Quiesce-Mode: concurrent')
      }
      for (const server of servers) all.push(await getRun(server, urlPath, settings.warmup, settings.connections, 0))
      for (let i = 0; i < roundsPer(generation); i++) {
        round++
        for (const server of rotation(servers, round)) {
          const run = await getRun(server, urlPath, settings.duration, settings.connections, round)
          all.push(run)
          console.log(`  round ${round} ${server.name.padEnd(18)} ${fmt(run.rps).padStart(7)} req/s  p50 ${run.p50Ms} ms  p99 ${run.p99Ms} ms  non-2xx ${run.non2xx}  errors ${run.errors}  CPU ${fmt(run.cpuMicrosPerAnswer)} µs/answer`)
        }
      }
    } finally {
      for (const server of servers) await stopServer(server)
    }
  }
  const samePage = pages[0]!.html === pages[2]!.html
  const [normal, concurrent, without] = [{ name: names[0]! }, { name: names[1]! }, { name: names[2]! }]
  const twin = settings.gateAA ? { name: names[3]! } : undefined

  const measured = all.filter((run) => run.round > 0)
  const find = (name: string, round: number) => measured.find((run) => run.server === name && run.round === round)!
  const roundsList = Array.from({ length: settings.rounds }, (_, i) => i + 1)
  const ratios = (name: string) => roundsList.map((round) => find(name, round).rps / find(without.name, round).rps)
  const cpuRatios = (name: string) => roundsList.map((round) => find(without.name, round).cpuMicrosPerAnswer / find(name, round).cpuMicrosPerAnswer)
  const medianOf = (name: string, pick: (run: RunResult) => number) => median(measured.filter((run) => run.server === name).map(pick))
  const bad = all.reduce((sum, run) => sum + run.non2xx + run.errors, 0)
  if (bad > 0) failures.push(`gate: ${bad} non-2xx answers or errors`)

  console.log('\n' + table(RUN_HEADER, all.map((run) => runRow(run, 'req/s'))))
  const result: Record<string, unknown> = { path: urlPath, samePage, htmlChars: Object.fromEntries(pages.map((page) => [page.server, page.html.length])), runs: all }
  if (twin !== undefined) {
    const r = ratios(twin.name)
    const c = cpuRatios(twin.name)
    console.log(`A/A: ${twin.name} / without-plugin req/s per round: ${r.map((x) => x.toFixed(3)).join(', ')}; median ${median(r).toFixed(3)}; by CPU per answer ${median(c).toFixed(3)} (the same server twice: the noise floor)`)
    result[twin.name] = { ratios: r, medianRatio: median(r), cpuRatios: c, medianCpuRatio: median(c) }
    summary.push({ part: 'gate', database: 'sqlite', measure: 'A/A: without-2 / without req/s, by CPU (noise floor)', value: `${median(r).toFixed(3)}, ${median(c).toFixed(3)}`, target: '(1.000)', met: null })
  }
  for (const server of [normal, concurrent]) {
    const r = ratios(server.name)
    const c = cpuRatios(server.name)
    const met = median(r) >= 0.97
    console.log(`${server.name} / without-plugin req/s per round: ${r.map((x) => x.toFixed(3)).join(', ')}; median ${median(r).toFixed(3)} → target ≥ 0.97 ${met ? 'MET' : 'NOT MET'}`)
    console.log(`  without-plugin / ${server.name} server CPU per answer: ${c.map((x) => x.toFixed(3)).join(', ')}; median ${median(c).toFixed(3)}`)
    result[server.name] = { ratios: r, medianRatio: median(r), cpuRatios: c, medianCpuRatio: median(c), target: 0.97, targetMet: met }
    summary.push({ part: 'gate', database: 'sqlite', measure: `${server.name.replace('plugin-', '')} / without req/s (median of ${settings.rounds})`, value: median(r).toFixed(3), target: '≥ 0.97', met })
    summary.push({ part: 'gate', database: 'sqlite', measure: `${server.name.replace('plugin-', '')} / without by CPU µs/answer`, value: median(c).toFixed(3), target: '(≥ 0.97)', met: null })
  }
  for (const name of names) {
    const server = { name }
    summary.push({ part: 'gate', database: 'sqlite', measure: `${server.name}: req/s, CPU µs/answer (median)`, value: `${fmt(medianOf(server.name, (r) => r.rps))}, ${fmt(medianOf(server.name, (r) => r.cpuMicrosPerAnswer))}`, target: '', met: null })
  }
  report.gate = result
}

// ---------------------------------------------------------------------------------------------
// 1b. The gate's CPU per request, in one process

async function gateCpuPart (sqlite: Target, dataDir: string): Promise<void> {
  const file = sqlite.databaseUrl.slice('sqlite:'.length)
  const copy = path.join(dataDir, 'sqlite-concurrent-cpu', 'quiesce.sqlite')
  await copySqlite(file, copy)
  const urlPath = `/docs/${sqlite.slugs[0]}`
  console.log(`\n== gate-cpu: GET ${urlPath} (anonymous), SQLite, four apps in this process (dist/, inject()) ==`)
  const dist = path.join(ROOT, 'dist/app')
  const { buildApp } = await import(pathToFileURL(path.join(dist, 'app.js')).href) as typeof AppModule
  const { loadConfig } = await import(pathToFileURL(path.join(dist, 'config.js')).href) as typeof ConfigModule
  const { openDatabase } = await import(pathToFileURL(path.join(dist, 'db/database.js')).href) as typeof DatabaseModule
  const variants = [
    { name: 'plugin-normal', env: sqlite.env, maintenance: true },
    { name: 'plugin-concurrent', env: { ...sqlite.env, QUIESCE_DATA_DIR: path.dirname(copy), QUIESCE_DATABASE_URL: `sqlite:${copy}` }, maintenance: true },
    { name: 'without-plugin', env: sqlite.env, maintenance: false },
    { name: 'without-plugin-2', env: sqlite.env, maintenance: false },
  ]
  const apps: InProcessApp[] = []
  try {
    for (const variant of variants) {
      const config = loadConfig({ ...variant.env, QUIESCE_INSTANCE_ID: variant.name })
      const database = await openDatabase(config.database)
      const app = await buildApp({ config, database, maintenance: variant.maintenance, logger: { level: 'warn' } })
      apps.push({ name: variant.name, app })
      await app.ready()
    }
    const concurrent = apps[1]!.app
    const { version } = (await concurrent.inject({ url: '/api/maintenance', headers: { authorization: MANAGER_AUTH } })).json<{ version: number }>()
    const switched = await concurrent.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization: MANAGER_AUTH }, payload: { mode: 'concurrent', reason: 'benchmark', expectedVersion: version } })
    if (switched.statusCode !== 200) throw new Error(`plugin-concurrent: PUT /api/maintenance answered ${switched.statusCode}: ${switched.body}`)
    for (const { name, app } of apps) {
      const page = await app.inject({ url: urlPath })
      console.log(`  ${name.padEnd(18)} ${page.statusCode}, Quiesce-Mode ${page.headers['quiesce-mode'] ?? '(none)'}, ${page.body.length} chars of HTML`)
      if (page.statusCode !== 200) failures.push(`gate-cpu: ${name} answered the page with ${page.statusCode}`)
    }
    const options = { urlPath, batch: settings.cpuBatch, batchesPerRound: settings.cpuBatches, rounds: settings.cpuRounds, warmup: 3000 }
    console.log(`  ${options.rounds} rounds × ${options.batchesPerRound} batches × ${options.batch} requests per app, interleaved batch by batch; load ${load().loadavg1.toFixed(1)}`)
    const perRound = await cpuPerRequest(apps, options)
    const without = perRound.get('without-plugin')!
    const ratiosOf = (name: string) => perRound.get(name)!.map((micros, round) => without[round]! / micros)
    const result: Record<string, unknown> = { path: urlPath, ...options, load: load().loadavg1, perRound: Object.fromEntries(perRound) }
    for (const [name, values] of perRound) console.log(`  ${name.padEnd(18)} ${values.map((micros) => micros.toFixed(1)).join(' ')} µs/request; median ${median(values).toFixed(1)}`)
    const aa = ratiosOf('without-plugin-2')
    const aaSpread = Math.max(...aa.map((ratio) => Math.abs(1 - ratio)))
    console.log(`  A/A: without-plugin / without-plugin-2 per round ${aa.map((ratio) => ratio.toFixed(3)).join(', ')}; median ${median(aa).toFixed(3)}, widest ${(1 - aaSpread).toFixed(3)}–${(1 + aaSpread).toFixed(3)}`)
    summary.push({ part: 'gate-cpu', database: 'sqlite', measure: 'A/A: without / without-2 CPU per request (median; widest round)', value: `${median(aa).toFixed(3)}; ±${aaSpread.toFixed(3)}`, target: '(1.000)', met: null })
    result.aa = { ratios: aa, medianRatio: median(aa), widest: aaSpread }
    for (const [name, target] of [['plugin-normal', 0.99], ['plugin-concurrent', 0.98]] as const) {
      const ratios = ratiosOf(name)
      const extraMicros = median(perRound.get(name)!) - median(without)
      const met = median(ratios) >= target
      console.log(`  without-plugin / ${name} CPU per request: ${ratios.map((ratio) => ratio.toFixed(3)).join(', ')}; median ${median(ratios).toFixed(3)} (${extraMicros >= 0 ? '+' : ''}${extraMicros.toFixed(1)} µs) → target ≥ ${target} ${met ? 'MET' : 'NOT MET'}`)
      summary.push({ part: 'gate-cpu', database: 'sqlite', measure: `without / ${name.replace('plugin-', '')} CPU per request (median of ${options.rounds}; µs more)`, value: `${median(ratios).toFixed(3)} (${extraMicros >= 0 ? '+' : ''}${extraMicros.toFixed(1)} µs)`, target: `≥ ${target}`, met })
      result[name] = { ratios, medianRatio: median(ratios), extraMicros, target, targetMet: met }
    }
    report.gateCpu = result
  } finally {
    for (const { app } of apps) await app.close()
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Commits

async function commitPart (target: Target): Promise<void> {
  const withPlugin = { name: `plugin-${target.kind}` }
  const without = { name: `without-${target.kind}` }
  console.log(`\n== commit: PUT /api/docs/:slug (HTTP Basic, member "${MEMBER}"), ${target.kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, each request a random one of ${target.slugs.length} documents ==`)
  console.log(`servers: ${APP_COMMAND}; both on the same database, taking turns; a run is a fixed number of PUTs sized from the rates so far (~${settings.duration} s); ${settings.generations} generation${settings.generations === 1 ? '' : 's'} of server processes`)

  const tally: Tally = new Map()
  const before = await documentVersions(target.databaseUrl)
  const put = (server: Server, amount: number, round: number) => putRun(server, { slugs: target.slugs, amount, connections: settings.connections, authorization: MEMBER_AUTH, tally, round })
  const rates = new Map<string, number[]>()
  const all: WriteRunResult[] = []
  for (let generation = 1, round = 0; generation <= settings.generations; generation++) {
    const servers = [await startApp(withPlugin.name, target, true), await startApp(without.name, target, false)]
    try {
      for (const server of servers) {
        const probe = await put(server, settings.connections * 30, 0)
        const warm = await put(server, (rates.has(server.name) ? median(rates.get(server.name)!) : probe.rps) * settings.warmup, 0)
        all.push(warm)
        if (!rates.has(server.name)) rates.set(server.name, [warm.rps])
      }
      for (let i = 0; i < roundsPer(generation); i++) {
        round++
        for (const server of rotation(servers, round)) {
          const run = await put(server, median(rates.get(server.name)!) * settings.duration, round)
          rates.get(server.name)!.push(run.rps)
          all.push(run)
          console.log(`  round ${round} ${server.name.padEnd(16)} ${fmt(run.rps).padStart(6)} commits/s  p50 ${run.p50Ms} ms  p99 ${run.p99Ms} ms  409 ${run.conflicts}  other non-2xx ${run.otherNon2xx}  errors ${run.errors}  CPU ${fmt(run.cpuMicrosPerAnswer)} µs/answer`)
        }
      }
    } finally {
      for (const server of servers) await stopServer(server)
    }
  }
  const servers = [withPlugin, without]

  const check: VersionCheck = checkVersions(target.slugs, before, await documentVersions(target.databaseUrl), tally)
  console.log('\n' + table(RUN_HEADER, all.map((run) => runRow(run, 'commits/s'))))
  console.log('(warm-up rows show the second warm-up run only, the check counts every PUT; server CPU is the Node process, for PostgreSQL without the database server\'s own)')
  console.log(`check: stored versions rose by ${fmt(check.versionIncrements)}, 2xx answers ${fmt(check.answers2xx)} (both servers); documents whose count or last version differ: ${check.mismatchedDocuments} → ${check.passed ? 'OK' : 'MISMATCH'}`)
  if (!check.passed) failures.push(`commit ${target.kind}: versions rose by ${check.versionIncrements} but there were ${check.answers2xx} 2xx answers (${check.mismatchedDocuments} documents differ, e.g. ${check.examples.join(', ')})`)
  const bad = all.reduce((sum, run) => sum + run.otherNon2xx + run.errors, 0)
  if (bad > 0) failures.push(`commit ${target.kind}: ${bad} PUTs answered with a non-2xx other than 409, or failed`)

  const measured = all.filter((run) => run.round > 0)
  const find = (name: string, round: number) => measured.find((run) => run.server === name && run.round === round)!
  const roundsList = Array.from({ length: settings.rounds }, (_, i) => i + 1)
  const ratios = roundsList.map((round) => find(withPlugin.name, round).rps / find(without.name, round).rps)
  const cpuRatios = roundsList.map((round) => find(without.name, round).cpuMicrosPerAnswer / find(withPlugin.name, round).cpuMicrosPerAnswer)
  const medianOf = (name: string, pick: (run: RunResult) => number) => median(measured.filter((run) => run.server === name).map(pick))
  const met = median(ratios) >= 0.95
  console.log(`${withPlugin.name} / ${without.name} commits per round: ${ratios.map((x) => x.toFixed(3)).join(', ')}; median ${median(ratios).toFixed(3)} → target ≥ 0.95 ${met ? 'MET' : 'NOT MET'}`)
  console.log(`  ${without.name} / ${withPlugin.name} server CPU per answer: ${cpuRatios.map((x) => x.toFixed(3)).join(', ')}; median ${median(cpuRatios).toFixed(3)}`)
  summary.push({ part: 'commit', database: target.kind, measure: `with / without commits/s (median of ${settings.rounds})`, value: median(ratios).toFixed(3), target: '≥ 0.95', met })
  summary.push({ part: 'commit', database: target.kind, measure: 'with / without by CPU µs/answer', value: median(cpuRatios).toFixed(3), target: '(≥ 0.95)', met: null })
  for (const server of servers) {
    summary.push({ part: 'commit', database: target.kind, measure: `${server.name}: commits/s, p99 ms, CPU µs/answer (median)`, value: `${fmt(medianOf(server.name, (r) => r.rps))}, ${medianOf(server.name, (r) => r.p99Ms)}, ${fmt(medianOf(server.name, (r) => r.cpuMicrosPerAnswer))}`, target: '', met: null })
  }
  summary.push({ part: 'commit', database: target.kind, measure: 'stored versions = 2xx answers', value: `${fmt(check.versionIncrements)} = ${fmt(check.answers2xx)}`, target: 'equal', met: check.passed })
  ;(report.commit as Record<string, unknown>)[target.kind] = { runs: all, ratios, medianRatio: median(ratios), cpuRatios, medianCpuRatio: median(cpuRatios), target: 0.95, targetMet: met, check }
}

// ---------------------------------------------------------------------------------------------
// 3. Propagation

async function propagationPart (target: Target): Promise<void> {
  const label = target.kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'
  const signal = target.kind === 'sqlite' ? 'PRAGMA data_version polled every 50 ms' : 'LISTEN/NOTIFY'
  const limit = target.kind === 'sqlite' ? 250 : 100
  const a = await startApp(`A-${target.kind}`, target, true)
  const b = await startApp(`B-${target.kind}`, target, true)
  console.log(`\n== propagation, ${label} (${signal}): ${settings.changes} changes on A, each until B's event stream reports it ==`)
  let streamError: Error | undefined
  const events = new StateEvents(b.url, MANAGER_AUTH, (err) => { streamError = err })
  try {
    let version = await currentVersion(a)
    if (await events.arrival(version, 5000) === undefined) throw new Error(`B's event stream did not report the current state (v${version}) within 5 s`)
    const samples: Array<{ version: number, mode: string, latencyMs: number, putMs: number }> = []
    let missing = 0
    const cpuBefore = { a: cpuMicrosOf(a), b: cpuMicrosOf(b) }
    for (let i = 1; i <= settings.changes; i++) {
      const mode = i % 2 === 1 ? 'concurrent' : 'normal'
      const sent = performance.now()
      const answer = await changeMode(a, mode, version)
      version = answer.state.version
      const arrived = await events.arrival(version, 5000)
      if (streamError !== undefined) throw streamError
      if (arrived === undefined) {
        missing++
        console.log(`  change ${i} (v${version}, ${mode}): B did not report it within 5 s`)
      } else {
        samples.push({ version, mode, latencyMs: arrived - answer.headersAt, putMs: answer.headersAt - sent })
      }
      await sleep(settings.pauseMs + Math.random() * 30)
    }
    if (settings.changes % 2 === 1) version = (await changeMode(a, 'normal', version)).state.version
    const cpu = { a: cpuMicrosOf(a) - cpuBefore.a, b: cpuMicrosOf(b) - cpuBefore.b }
    const latencies = samples.map((sample) => sample.latencyMs)
    const early = latencies.filter((ms) => ms < 0).length
    const stats = {
      changes: settings.changes,
      reported: samples.length,
      missing,
      beforeTheAnswer: early,
      minMs: Math.min(...latencies),
      medianMs: median(latencies),
      p90Ms: percentile(latencies, 90),
      p99Ms: percentile(latencies, 99),
      maxMs: Math.max(...latencies),
      putMedianMs: median(samples.map((sample) => sample.putMs)),
      cpuMs: { a: cpu.a / 1000, b: cpu.b / 1000 },
    }
    const met = missing === 0 && stats.p99Ms < limit
    console.log(`  A's answer → B's event: median ${stats.medianMs.toFixed(1)} ms, p90 ${stats.p90Ms.toFixed(1)} ms, p99 ${stats.p99Ms.toFixed(1)} ms, min ${stats.minMs.toFixed(1)} ms, max ${stats.maxMs.toFixed(1)} ms; ${early} of ${samples.length} arrived before A's answer (negative); missing ${missing} → target p99 < ${limit} ms ${met ? 'MET' : 'NOT MET'}`)
    console.log(`  PUT /api/maintenance on A: median ${stats.putMedianMs.toFixed(1)} ms; server CPU during the changes: A ${fmt(stats.cpuMs.a)} ms, B ${fmt(stats.cpuMs.b)} ms`)
    if (missing > 0) failures.push(`propagation ${target.kind}: ${missing} changes never reached B's event stream`)
    summary.push({ part: 'propagation', database: target.kind, measure: `A's answer → B's event, p99 (${samples.length} changes)`, value: `${stats.p99Ms.toFixed(1)} ms`, target: `< ${limit} ms`, met })
    summary.push({ part: 'propagation', database: target.kind, measure: 'median, p90, max', value: `${stats.medianMs.toFixed(1)}, ${stats.p90Ms.toFixed(1)}, ${stats.maxMs.toFixed(1)} ms`, target: '', met: null })
    ;(report.propagation as Record<string, unknown>)[target.kind] = { ...stats, target: { p99BelowMs: limit }, targetMet: met, samples }
  } finally {
    events.close()
    await stopServer(a)
    await stopServer(b)
  }
}

function cpuMicrosOf (server: Server): number {
  return cpuMicros(server.child.pid)
}

// ---------------------------------------------------------------------------------------------
// The run

async function main (): Promise<void> {
  const began = performance.now()
  console.log(`quiesce maintenance benchmark: node ${process.version}, ${os.cpus().length} CPUs; clients in this process, each server in its own child process`)
  console.log(`parts: ${settings.only.join(', ')}; ${settings.connections} connections, pipelining 1; warm-up ${settings.warmup} s per server, then ${settings.rounds} rotating rounds of ${settings.duration} s; ${settings.changes} mode changes per database`)
  console.log(describeBuild(report))
  console.log(await ensureBuilt())

  const dataDir = temporaryDataDir('quiesce-bench-maintenance-', settings.keep)
  const baseEnv = { HOST: '127.0.0.1', PORT: '0', NODE_ENV: 'production', QUIESCE_LOG_LEVEL: 'warn' }
  const sqliteFile = path.join(dataDir, 'sqlite', 'quiesce.sqlite')
  const targets: Target[] = [await prepare('sqlite', { ...baseEnv, QUIESCE_DATA_DIR: path.dirname(sqliteFile), QUIESCE_DATABASE_URL: `sqlite:${sqliteFile}` })]
  if (settings.postgres && (runs('commit') || runs('propagation'))) {
    const database = await throwawayPostgres(settings.postgresAdminUrl)
    targets.push(await prepare('postgres', { ...baseEnv, QUIESCE_DATA_DIR: path.join(dataDir, 'postgres'), QUIESCE_DATABASE_URL: database.url }, database.name))
  }

  const part = (name: string, run: () => Promise<void>) => runPart(failures, name, run)
  report.commit = {}
  report.propagation = {}
  if (runs('gate')) await part('gate', () => gatePart(targets[0]!, dataDir))
  if (runs('gate-cpu')) await part('gate-cpu', () => gateCpuPart(targets[0]!, dataDir))
  const chosen = targets.filter((target) => target.kind === 'postgres' || settings.sqlite)
  if (runs('commit')) for (const target of chosen) await part(`commit ${target.kind}`, () => commitPart(target))
  if (runs('propagation')) for (const target of chosen) await part(`propagation ${target.kind}`, () => propagationPart(target))

  console.log(`\n== summary (load at start ${(report.loadAtStart as number).toFixed(1)}, now ${load().loadavg1.toFixed(1)}, ${os.cpus().length} CPUs) ==`)
  console.log(table(['part', 'database', 'measure', 'value', 'target', ''], summary.map((row) => [row.part, row.database, row.measure, row.value, row.target, row.met === null ? '' : row.met ? 'MET' : 'NOT MET'])))
  report.summary = summary
  finishReport('maintenance', report, failures, began)
}

/** Seeds the documents and adds the manager and the member; returns the slugs. */
async function prepare (kind: Target['kind'], env: Record<string, string>, name?: string): Promise<Target> {
  const databaseUrl = env.QUIESCE_DATABASE_URL!
  const seeded = await runCli(['seed', '--docs', String(settings.writeDocs)], env)
  await runCli(['user', 'add', MANAGER, '--role', 'manager'], env, MANAGER_PASSWORD + '\n')
  await runCli(['user', 'add', MEMBER, '--role', 'member'], env, MEMBER_PASSWORD + '\n')
  const slugs = (await queryDatabase<{ slug: string }>(databaseUrl, 'select slug from document order by id')).map((row) => row.slug)
  console.log(`setup: ${kind === 'sqlite' ? `SQLite ${databaseUrl.slice('sqlite:'.length)}` : `PostgreSQL database ${name}`}: ${seeded.toLowerCase()}, manager ${MANAGER}, member ${MEMBER}`)
  return { kind, env, databaseUrl, slugs }
}

await runMain(main)
