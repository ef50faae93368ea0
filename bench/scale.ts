/**
 * `npm run bench:scale`: cost as the site grows (issue 10, item 4). One database per kind is
 * seeded up to each size in turn (`quiesce seed`, bulk inserts), and at each size a fresh server
 * (dist/, `quiesce serve`) is measured:
 *
 * - http: anonymous reads with autocannon, each a warm-up and a measured run: a random document
 *   page, the first and the last page of /docs, and /search for a part number (one match), for
 *   "brass hinge" (one document in 144) and for "specification" (every document);
 * - tasks (at BENCH_TASK_SIZES): the catalog rebuild (POST /api/tasks/reindex, the task's own
 *   start and end), `quiesce export FILE`, and `quiesce import FILE` into a new, empty database
 *   with a probe inside the process (node --import of a data: URL): its peak RSS (the kernel's
 *   maxRSS), its peak heap (the largest heap V8 had before any of its collections, garbage
 *   included) and its live heap (the largest a full collection left), from v8.GCProfiler.
 *   Export and import are timed as commands, process start included;
 * - streams (at the largest size, on a fresh server): the RSS of one instance idle and holding
 *   BENCH_STREAMS open event streams (GET /api/maintenance/events), and how long a mode change
 *   takes to reach all of them.
 *
 * Checks (exit code 1): no non-2xx answers; every import loads every document; from the
 * smallest task size to the largest, the import's live heap grows by at most half a byte per
 * byte of file (it stays flat; the import before streaming held about 1.5); every stream opens and
 * gets the change. The peak RSS is reported: it follows V8's room for garbage as well.
 *
 * Not part of the test suite. Environment (all optional):
 *   BENCH_SIZES=1000,10000,100000  document counts, ascending
 *   BENCH_TASK_SIZES=10000,100000  the sizes at which reindex, export and import are measured
 *   BENCH_ONLY=http,tasks,streams  the parts to run
 *   BENCH_DATABASES=sqlite,postgres
 *   BENCH_DURATION=4               seconds per measured run
 *   BENCH_WARMUP=1                 seconds of warm-up per route
 *   BENCH_CONNECTIONS=10           autocannon connections (pipelining 1)
 *   BENCH_STREAMS=1000             event streams held open
 *   BENCH_POSTGRES_URL             admin URL (postgres://postgres@127.0.0.1:5432/test); throwaway
 *                                  databases quiesce_scale_<random> are created and dropped
 *   BENCH_KEEP=1                   keep the temporary data directory
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, rmSync, statSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import {
  APP_BIN, basicAuth, cpuMicros, describeBuild, ensureBuilt, envNumber, finishReport, fmt, httpRequest, load, newReport, postgresAdmin, queryDatabase,
  runCli, runMain, runPart, startServer, stopServer, summarise, table, temporaryDataDir, throwawayPostgres, type RunResult, type Server,
} from './lib.js'

type Kind = 'sqlite' | 'postgres'
const PARTS = ['http', 'tasks', 'streams'] as const
type Part = typeof PARTS[number]

function list (name: string, fallback: string): string[] {
  return (process.env[name] ?? fallback).split(',').map((item) => item.trim()).filter(Boolean)
}

const settings = {
  sizes: list('BENCH_SIZES', '1000,10000,100000').map(Number),
  taskSizes: list('BENCH_TASK_SIZES', '10000,100000').map(Number),
  only: list('BENCH_ONLY', PARTS.join(',')) as Part[],
  databases: list('BENCH_DATABASES', 'sqlite,postgres') as Kind[],
  duration: envNumber('BENCH_DURATION', 4),
  warmup: envNumber('BENCH_WARMUP', 1, 0),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  streams: envNumber('BENCH_STREAMS', 1000),
  postgresAdminUrl: process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  keep: process.env.BENCH_KEEP === '1',
}
for (const size of settings.sizes) if (!Number.isInteger(size) || size < 1) throw new Error(`BENCH_SIZES takes whole numbers, not ${size}`)
if (settings.sizes.some((size, i) => i > 0 && size <= settings.sizes[i - 1]!)) throw new Error('BENCH_SIZES must be ascending')
for (const part of settings.only) if (!PARTS.includes(part)) throw new Error(`BENCH_ONLY takes ${PARTS.join(', ')}, not ${part}`)
for (const kind of settings.databases) if (kind !== 'sqlite' && kind !== 'postgres') throw new Error(`BENCH_DATABASES takes sqlite and postgres, not ${kind}`)
const runs = (part: Part) => settings.only.includes(part)

const MANAGER = 'benchmanager'
const MANAGER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const MANAGER_AUTH = basicAuth(MANAGER, MANAGER_PASSWORD)
const DOCS_PAGE = 50

/**
 * Loaded into `quiesce import` (node --import): when the process exits it writes its peak RSS
 * and heap to BENCH_MEMORY_FILE. The heap peaks just before a collection, so the largest heap
 * any collection found is its peak, garbage included (or the heap at exit, if larger); what a
 * full collection (mark-sweep-compact) leaves is live, and its largest is the live peak.
 */
const MEMORY_PROBE = 'data:text/javascript,' + encodeURIComponent(`
import { writeFileSync } from 'node:fs'
import { GCProfiler } from 'node:v8'
const profiler = new GCProfiler()
profiler.start()
process.on('exit', () => {
  const { statistics } = profiler.stop()
  let heapPeak = process.memoryUsage().heapUsed
  let liveHeapPeak = 0
  for (const gc of statistics) {
    heapPeak = Math.max(heapPeak, gc.beforeGC.heapStatistics.usedHeapSize)
    if (gc.gcType === 'MarkSweepCompact') liveHeapPeak = Math.max(liveHeapPeak, gc.afterGC.heapStatistics.usedHeapSize)
  }
  const fullCollections = statistics.filter((gc) => gc.gcType === 'MarkSweepCompact').length
  // Without a full collection, the heap at exit is as much as can have been live.
  if (fullCollections === 0) liveHeapPeak = process.memoryUsage().heapUsed
  writeFileSync(process.env.BENCH_MEMORY_FILE, JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024, heapPeak, liveHeapPeak, collections: statistics.length, fullCollections }))
})
`)

interface Route {
  name: string
  /** The path of the next request (random documents and part numbers are picked per request). */
  path: (size: number, slugs: string[]) => () => string
}

const pick = (count: number) => 1 + Math.floor(Math.random() * count)
const ROUTES: Route[] = [
  { name: 'document page', path: (_size, slugs) => () => `/docs/${slugs[pick(slugs.length) - 1]}` },
  { name: '/docs first page', path: () => () => '/docs' },
  { name: '/docs last page', path: (size) => () => `/docs?page=${Math.ceil(size / DOCS_PAGE)}` },
  // Every seeded document has a part number Q-<its index, 5 digits>: one match.
  { name: 'search: a part number', path: (size) => () => `/search?q=Q-${String(pick(size)).padStart(5, '0')}` },
  { name: 'search: brass hinge', path: () => () => '/search?q=brass+hinge' },
  { name: 'search: specification', path: () => () => '/search?q=specification' },
]

interface HttpResult extends RunResult { database: Kind, size: number, route: string }
interface TaskResult {
  database: Kind
  size: number
  reindexMs: number
  reindexBatches: number
  exportMs: number
  exportBytes: number
  importMs: number
  importedDocuments: number
  importMaxRss: number
  importHeapPeak: number
  importLiveHeapPeak: number
  importCollections: number
  importFullCollections: number
}
interface StreamResult {
  database: Kind
  size: number
  streams: number
  opened: number
  rssIdle: number
  rssHolding: number
  rssPerStream: number
  /** From the mode change's answer to the last stream's event. */
  fanOutMs: number
  reached: number
}

const failures: string[] = []
const httpResults: HttpResult[] = []
const taskResults: TaskResult[] = []
const streamResults: StreamResult[] = []
const report = newReport(settings)

const mib = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MiB`

/** The resident set of a process (Linux /proc), in bytes. */
function rssOf (pid: number | undefined): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(match![1]) * 1024
}

/** A run of `seconds` in which every request asks for `next()`. */
async function run (server: Server, next: () => string, seconds: number, round: number): Promise<RunResult> {
  const cpuBefore = cpuMicros(server.child.pid)
  const result = await autocannon({
    url: server.url,
    connections: settings.connections,
    pipelining: 1,
    duration: seconds,
    requests: [{ setupRequest: (request) => ({ ...request, path: next() }) }],
  })
  return summarise(server.name, round, result, cpuMicros(server.child.pid) - cpuBefore)
}

interface Site {
  kind: Kind
  url: string
  env: Record<string, string>
  /** A new, empty database of the same kind, for an import. */
  fresh: (name: string) => Promise<{ env: Record<string, string>, dispose: () => Promise<void> }>
}

async function openSite (kind: Kind, dataDir: string): Promise<Site> {
  const base = { HOST: '127.0.0.1', PORT: '0', NODE_ENV: 'production', QUIESCE_LOG_LEVEL: 'warn' }
  if (kind === 'sqlite') {
    const dir = path.join(dataDir, 'sqlite')
    const url = `sqlite:${path.join(dir, 'quiesce.sqlite')}`
    return {
      kind,
      url,
      env: { ...base, QUIESCE_DATA_DIR: dir, QUIESCE_DATABASE_URL: url },
      async fresh (name) {
        const freshDir = path.join(dataDir, name)
        return {
          env: { ...base, QUIESCE_DATA_DIR: freshDir, QUIESCE_DATABASE_URL: `sqlite:${path.join(freshDir, 'quiesce.sqlite')}` },
          dispose: async () => rmSync(freshDir, { recursive: true, force: true }),
        }
      },
    }
  }
  const database = await throwawayPostgres(settings.postgresAdminUrl, 'quiesce_scale')
  return {
    kind,
    url: database.url,
    env: { ...base, QUIESCE_DATA_DIR: path.join(dataDir, 'postgres'), QUIESCE_DATABASE_URL: database.url },
    async fresh (name) {
      const copy = await throwawayPostgres(settings.postgresAdminUrl, 'quiesce_scale')
      return { env: { ...base, QUIESCE_DATA_DIR: path.join(dataDir, name), QUIESCE_DATABASE_URL: copy.url }, dispose: copy.drop }
    },
  }
}

async function httpPart (site: Site, server: Server, size: number): Promise<void> {
  const slugs = (await queryDatabase<{ slug: string }>(site.url, 'select slug from document order by id')).map((row) => row.slug)
  for (const route of ROUTES) {
    const next = route.path(size, slugs)
    if (settings.warmup > 0) await run(server, next, settings.warmup, 0)
    const result = { ...await run(server, next, settings.duration, 1), database: site.kind, size, route: route.name }
    httpResults.push(result)
    console.log(`  ${route.name.padEnd(22)} ${fmt(result.rps).padStart(6)} req/s  p50 ${result.p50Ms} ms  p99 ${result.p99Ms} ms  CPU ${fmt(result.cpuMicrosPerAnswer)} µs/answer${result.non2xx + result.errors > 0 ? `  non-2xx ${result.non2xx}, errors ${result.errors}` : ''}`)
    if (result.non2xx + result.errors > 0) failures.push(`${site.kind} ${size} ${route.name}: ${result.non2xx} non-2xx answers, ${result.errors} errors`)
  }
}

const managerAgent = new http.Agent({ keepAlive: true, maxSockets: 2 })

async function api<T> (server: Server, method: string, urlPath: string, body?: unknown): Promise<T> {
  const answer = await httpRequest(managerAgent, server.url + urlPath, method, { authorization: MANAGER_AUTH }, body)
  if (answer.status < 200 || answer.status > 299) throw new Error(`${method} ${urlPath} answered ${answer.status}: ${answer.body}`)
  return JSON.parse(answer.body) as T
}

async function reindex (server: Server): Promise<{ ms: number, batches: number }> {
  const { id } = await api<{ id: number }>(server, 'POST', '/api/tasks/reindex')
  for (;;) {
    await sleep(100)
    const task = await api<{ state: string, startedAt: string, finishedAt: string | null, batches: number, error: string | null }>(server, 'GET', `/api/tasks/${id}`)
    if (task.state === 'done') return { ms: Date.parse(task.finishedAt!) - Date.parse(task.startedAt), batches: task.batches }
    if (['failed', 'cancelled'].includes(task.state)) throw new Error(`the reindex ended ${task.state}: ${task.error}`)
  }
}

async function taskPart (site: Site, server: Server, size: number, dataDir: string): Promise<void> {
  const rebuilt = await reindex(server)
  console.log(`  reindex                ${fmt(rebuilt.ms / 1000, 2)} s (${rebuilt.batches} batches)`)

  const file = path.join(dataDir, `export-${site.kind}-${size}.jsonl`)
  let began = performance.now()
  await runCli(['export', file], site.env)
  const exportMs = performance.now() - began
  const exportBytes = statSync(file).size
  console.log(`  quiesce export         ${fmt(exportMs / 1000, 2)} s (${mib(exportBytes)})`)

  const target = await site.fresh(`import-${site.kind}-${size}`)
  const memoryFile = path.join(dataDir, `import-memory-${site.kind}-${size}.json`)
  try {
    began = performance.now()
    const output = await runCli(['import', file], { ...target.env, BENCH_MEMORY_FILE: memoryFile }, '', ['--import', MEMORY_PROBE])
    const importMs = performance.now() - began
    const memory = JSON.parse(readFileSync(memoryFile, 'utf8')) as { maxRss: number, heapPeak: number, liveHeapPeak: number, collections: number, fullCollections: number }
    const importedDocuments = Number(/(\d+) document\b/.exec(output)?.[1] ?? Number.NaN)
    if (importedDocuments !== size) failures.push(`${site.kind} ${size}: the import loaded ${importedDocuments} documents (${output})`)
    taskResults.push({
      database: site.kind,
      size,
      reindexMs: rebuilt.ms,
      reindexBatches: rebuilt.batches,
      exportMs,
      exportBytes,
      importMs,
      importedDocuments,
      importMaxRss: memory.maxRss,
      importHeapPeak: memory.heapPeak,
      importLiveHeapPeak: memory.liveHeapPeak,
      importCollections: memory.collections,
      importFullCollections: memory.fullCollections,
    })
    console.log(`  quiesce import         ${fmt(importMs / 1000, 2)} s; peak RSS ${mib(memory.maxRss)}, peak heap ${mib(memory.heapPeak)}, live after a full collection at most ${mib(memory.liveHeapPeak)} (${memory.collections} collections, ${memory.fullCollections} full)`)
  } finally {
    await target.dispose()
    rmSync(file, { force: true })
  }
}

/** Opens the streams, measures the server's RSS holding them, and times one mode change reaching all of them. */
async function streamPart (site: Site, server: Server, size: number): Promise<void> {
  await sleep(1000)
  const rssIdle = rssOf(server.child.pid)
  const state = await api<{ version: number }>(server, 'GET', '/api/maintenance')
  const next = state.version + 1
  const arrivals: number[] = []
  const requests: http.ClientRequest[] = []
  let opened = 0
  await Promise.all(Array.from({ length: settings.streams }, () => new Promise<void>((resolve) => {
    let seen = ''
    let counted = false
    let arrived = false
    const request = http.get(`${server.url}/api/maintenance/events`, { agent: false, headers: { accept: 'text/event-stream' } }, (response) => {
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        seen += chunk
        if (!counted && seen.includes('event: state')) {
          counted = true
          opened++
          resolve()
        }
        if (!arrived && seen.includes(`id: ${next}\n`)) {
          arrived = true
          arrivals.push(performance.now())
        }
      })
    })
    request.setTimeout(30_000, () => { request.destroy(); resolve() })
    request.on('error', () => resolve())
    requests.push(request)
  })))
  try {
    await sleep(1000)
    const rssHolding = rssOf(server.child.pid)
    const switched = performance.now()
    await api(server, 'PUT', '/api/maintenance', { mode: 'concurrent', reason: 'scale benchmark', expectedVersion: state.version })
    const answered = performance.now()
    for (let waited = 0; arrivals.length < opened && waited < 10_000; waited += 20) await sleep(20)
    const fanOutMs = arrivals.length === 0 ? Number.NaN : Math.max(...arrivals) - Math.min(answered, switched)
    const result = { database: site.kind, size, streams: settings.streams, opened, rssIdle, rssHolding, rssPerStream: (rssHolding - rssIdle) / Math.max(1, opened), fanOutMs, reached: arrivals.length }
    streamResults.push(result)
    console.log(`  ${opened}/${settings.streams} event streams: RSS ${mib(rssIdle)} idle, ${mib(rssHolding)} holding them (${fmt(result.rssPerStream / 1024, 1)} KiB each); a mode change reached ${arrivals.length} of them within ${fmt(fanOutMs, 0)} ms of its answer`)
    if (opened < settings.streams) failures.push(`${site.kind}: ${settings.streams - opened} of ${settings.streams} event streams did not open`)
    if (arrivals.length < opened) failures.push(`${site.kind}: the mode change reached ${arrivals.length} of ${opened} streams`)
    const back = await api<{ version: number }>(server, 'GET', '/api/maintenance')
    await api(server, 'PUT', '/api/maintenance', { mode: 'normal', expectedVersion: back.version })
  } finally {
    for (const request of requests) request.destroy()
  }
}

async function measureKind (kind: Kind, dataDir: string): Promise<void> {
  const site = await openSite(kind, dataDir)
  console.log(`\n== ${kind === 'sqlite' ? 'SQLite' : 'PostgreSQL'} ==`)
  await runCli(['user', 'add', MANAGER, '--role', 'manager'], site.env, MANAGER_PASSWORD + '\n')
  let seeded = 0
  for (const size of settings.sizes) {
    const began = performance.now()
    await runCli(['seed', '--docs', String(size - seeded)], site.env)
    seeded = size
    // The planner's statistics and visibility map as autovacuum leaves them after a bulk load.
    if (kind === 'postgres') await postgresAdmin(site.url, 'vacuum analyze')
    console.log(`\n${fmt(size)} documents (seeded in ${fmt((performance.now() - began) / 1000, 1)} s; load ${load().loadavg1.toFixed(1)})`)
    const needsServer = runs('http') || (runs('tasks') && settings.taskSizes.includes(size))
    if (needsServer) {
      const server = await startServer(`${kind}-${size}`, [APP_BIN, 'serve'], { ...site.env, QUIESCE_INSTANCE_ID: `${kind}-${size}` })
      try {
        if (runs('http')) await httpPart(site, server, size)
        if (runs('tasks') && settings.taskSizes.includes(size)) await taskPart(site, server, size, dataDir)
      } finally {
        await stopServer(server)
      }
    }
    if (runs('streams') && size === settings.sizes.at(-1)) {
      const server = await startServer(`${kind}-${size}-streams`, [APP_BIN, 'serve'], { ...site.env, QUIESCE_INSTANCE_ID: `${kind}-streams` })
      try {
        await streamPart(site, server, size)
      } finally {
        await stopServer(server)
      }
    }
  }
}

function summary (): void {
  console.log(`\n== results (load at start ${(report.loadAtStart as number).toFixed(1)}, now ${load().loadavg1.toFixed(1)}, ${os.cpus().length} CPUs) ==`)
  if (httpResults.length > 0) {
    const header = ['database', 'route', ...settings.sizes.map((size) => `${fmt(size)}: req/s p50/p99 ms`)]
    const rows = settings.databases.flatMap((kind) => ROUTES.map((route) => [
      kind,
      route.name,
      ...settings.sizes.map((size) => {
        const result = httpResults.find((r) => r.database === kind && r.route === route.name && r.size === size)
        return result === undefined ? '-' : `${fmt(result.rps)} ${result.p50Ms}/${result.p99Ms}`
      }),
    ]))
    console.log(table(header, rows))
  }
  if (taskResults.length > 0) {
    console.log('\n' + table(['database', 'documents', 'reindex s', 'export s', 'export MiB', 'import s', 'import peak RSS MiB', 'peak heap MiB', 'live heap MiB'], taskResults.map((r) => [
      r.database, fmt(r.size), fmt(r.reindexMs / 1000, 2), fmt(r.exportMs / 1000, 2), fmt(r.exportBytes / 2 ** 20, 1), fmt(r.importMs / 1000, 2), fmt(r.importMaxRss / 2 ** 20, 1), fmt(r.importHeapPeak / 2 ** 20, 1), fmt(r.importLiveHeapPeak / 2 ** 20, 1),
    ])))
    for (const kind of settings.databases) {
      const mine = taskResults.filter((r) => r.database === kind)
      if (mine.length < 2) continue
      const [small, large] = [mine[0]!, mine.at(-1)!]
      const rss = large.importMaxRss / small.importMaxRss
      // What the import holds must not follow the file: an import that keeps the file's rows
      // holds more than a byte of heap per byte of file.
      const liveGrowth = (large.importLiveHeapPeak - small.importLiveHeapPeak) / (large.exportBytes - small.exportBytes)
      const flat = liveGrowth <= 0.5
      console.log(`${kind}: import at ${fmt(large.size)} against ${fmt(small.size)} documents (a file ${mib(large.exportBytes - small.exportBytes)} larger): peak RSS ×${rss.toFixed(2)}, live heap ${mib(large.importLiveHeapPeak - small.importLiveHeapPeak)} more (${liveGrowth.toFixed(2)} byte per byte of file) → flat (≤ 0.5) ${flat ? 'YES' : 'NO'}`)
      if (!flat) failures.push(`${kind}: the import's memory follows the file: live heap ${mib(small.importLiveHeapPeak)} at ${fmt(small.size)} documents, ${mib(large.importLiveHeapPeak)} at ${fmt(large.size)}; peak RSS ${mib(small.importMaxRss)}, ${mib(large.importMaxRss)}`)
    }
  }
  if (streamResults.length > 0) {
    console.log('\n' + table(['database', 'documents', 'streams open', 'RSS idle MiB', 'RSS holding MiB', 'KiB per stream', 'mode change to all, ms'], streamResults.map((r) => [
      r.database, fmt(r.size), `${r.opened}/${r.streams}`, fmt(r.rssIdle / 2 ** 20, 1), fmt(r.rssHolding / 2 ** 20, 1), fmt(r.rssPerStream / 1024, 1), fmt(r.fanOutMs),
    ])))
  }
}

async function main (): Promise<void> {
  const began = performance.now()
  console.log(`quiesce scale benchmark: node ${process.version}, ${os.cpus().length} CPUs; autocannon and the clients in this process, each server in its own child process`)
  console.log(`sizes ${settings.sizes.map((size) => fmt(size)).join(', ')} documents; tasks at ${settings.taskSizes.map((size) => fmt(size)).join(', ')}; parts ${settings.only.join(', ')}; ${settings.databases.join(' and ')}; ${settings.connections} connections, warm-up ${settings.warmup} s and ${settings.duration} s per route`)
  console.log(describeBuild(report))
  console.log(await ensureBuilt())

  const dataDir = temporaryDataDir('quiesce-bench-scale-', settings.keep)
  for (const kind of settings.databases) {
    await runPart(failures, kind, () => measureKind(kind, dataDir), '  ')
  }
  summary()
  Object.assign(report, { http: httpResults, tasks: taskResults, streams: streamResults })
  finishReport('scale', report, failures, began, `; load now ${load().loadavg1.toFixed(1)}, this benchmark included`)
}

await runMain(main)
