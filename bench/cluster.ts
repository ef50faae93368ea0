/**
 * `npm run bench:cluster`: Quiesce on PostgreSQL streaming replication (issue 9, item 6). A
 * throwaway primary and hot standby are built with the machine's PostgreSQL binaries
 * (test/helpers/postgres-server.ts: initdb, pg_basebackup -R, free ports, a temp dir), and
 * removed at the end. Both servers and every Quiesce process share this machine's cores, so the
 * figures are a floor of what separate machines give.
 *
 * 1. propagation: instance A on the primary, instance B on the standby (a read-only copy of the
 *    site, which re-reads the replicated state row every 200 ms: NOTIFY does not cross
 *    replication). This process follows B's /api/maintenance/events and switches the mode on A
 *    (normal ↔ concurrent), one change at a time; for each, the time from A's answer to B's
 *    `state` event with the new version. Reported: p50, p99 (no target in the issue; the poll
 *    interval bounds it at about 200 ms plus the replay).
 * 2. own-writes: instance A on the primary reading through the standby (QUIESCE_REPLICA_URLS),
 *    the standby held 500 ms behind (`recovery_min_apply_delay`). BENCH_WRITERS API clients, each
 *    echoing the Quiesce-Read-After header as documented, save their own document and read it
 *    back at once, BENCH_SAVES times each: every read must show the save just made (stale reads
 *    and 404s of one's own write: must be 0). Alongside, a visitor without a position reads the
 *    same documents: how often the lagging replica serves them something older (expected > 0:
 *    the lag is real).
 * 3. reads: anonymous `GET /api/docs/:slug` (autocannon, BENCH_CONNECTIONS, BENCH_DURATION s per
 *    round, BENCH_ROUNDS rotating rounds) against A with reads on the replica and against R,
 *    the same app without QUIESCE_REPLICA_URLS (everything on the primary). Reported: req/s of
 *    each and the ratio. Both databases share this machine's cores with the app and autocannon,
 *    so a replica cannot add capacity here: the figure shows the cost of the routing, not the
 *    gain a separate server gives.
 *
 * Not part of the test suite. Environment (all optional):
 *   BENCH_CHANGES=100     mode changes
 *   BENCH_PAUSE_MS=30     pause after each change, plus a random 0–30 ms (off the poll's beat)
 *   BENCH_DOCS=1000       documents seeded on the primary
 *   BENCH_WRITERS=8       own-writes: clients saving and reading back at once
 *   BENCH_SAVES=25        own-writes: saves per client
 *   BENCH_DURATION=5      reads: seconds per round and server
 *   BENCH_ROUNDS=4        reads: rounds (the servers' order alternates)
 *   BENCH_CONNECTIONS=10  reads: autocannon connections
 *   BENCH_ONLY=propagation,own-writes,reads   the parts to run
 */
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { PostgresServer } from '../test/helpers/postgres-server.js'
import {
  ROOT, basicAuth, ensureBuilt, envNumber, finishReport, fmt, getRun, httpRequest, load, median, newReport, onCleanup, percentile, queryDatabase, runCli,
  runMain, runPart, startServer, StateEvents, stopServer, table, temporaryDataDir, type RunResult, type Server,
} from './lib.js'

const PARTS = ['propagation', 'own-writes', 'reads'] as const
const settings = {
  changes: envNumber('BENCH_CHANGES', 100),
  pauseMs: envNumber('BENCH_PAUSE_MS', 30, 0),
  docs: envNumber('BENCH_DOCS', 1000),
  writers: envNumber('BENCH_WRITERS', 8),
  saves: envNumber('BENCH_SAVES', 25),
  duration: envNumber('BENCH_DURATION', 5),
  rounds: envNumber('BENCH_ROUNDS', 4),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  only: (process.env.BENCH_ONLY ?? PARTS.join(',')).split(',').map((part) => part.trim()).filter(Boolean),
}
for (const part of settings.only) if (!(PARTS as readonly string[]).includes(part)) throw new Error(`BENCH_ONLY takes ${PARTS.join(', ')} (comma-separated), not ${part}`)

const APP_SERVER = path.join(ROOT, 'bench/app-server.ts')
const MANAGER = 'benchmanager'
const MANAGER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const MANAGER_AUTH = basicAuth(MANAGER, MANAGER_PASSWORD)
const WRITER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })

const failures: string[] = []
const summary: Array<{ part: string, measure: string, value: string }> = []
const report = newReport(settings)

interface Pair {
  primary: PostgresServer
  standby: PostgresServer
  primaryEnv: Record<string, string>
  standbyEnv: Record<string, string>
}

async function buildPair (dataDir: string): Promise<Pair> {
  const primary = await PostgresServer.create({ max_connections: 100 })
  onCleanup(() => primary.destroy())
  const baseEnv = { HOST: '127.0.0.1', PORT: '0', NODE_ENV: 'production', QUIESCE_LOG_LEVEL: 'warn', QUIESCE_SESSION_SECRET: 'a bench secret shared by every instance of the site' }
  const primaryEnv = { ...baseEnv, QUIESCE_DATA_DIR: path.join(dataDir, 'primary'), QUIESCE_DATABASE_URL: primary.url() }
  const seeded = await runCli(['seed', '--docs', String(settings.docs)], primaryEnv)
  await runCli(['user', 'add', MANAGER, '--role', 'manager'], primaryEnv, MANAGER_PASSWORD + '\n')
  for (let i = 1; i <= settings.writers; i++) await runCli(['user', 'add', `writer${i}`, '--role', 'member'], primaryEnv, `${WRITER_PASSWORD}\n`)
  const standby = await primary.createStandby()
  onCleanup(() => standby.destroy())
  console.log(`setup: primary on port ${primary.port} (${seeded.toLowerCase()}), hot standby on port ${standby.port} (pg_basebackup -R)`)
  return { primary, standby, primaryEnv, standbyEnv: { ...baseEnv, QUIESCE_DATA_DIR: path.join(dataDir, 'standby'), QUIESCE_DATABASE_URL: standby.url() } }
}

function startApp (name: string, env: Record<string, string>): Promise<Server> {
  return startServer(name, ['--import', 'tsx', APP_SERVER], { ...env, QUIESCE_INSTANCE_ID: name })
}

async function changeMode (server: Server, mode: 'normal' | 'concurrent', expectedVersion: number) {
  const answer = await httpRequest(agent, `${server.url}/api/maintenance`, 'PUT', { authorization: MANAGER_AUTH }, { mode, reason: 'benchmark', expectedVersion })
  if (answer.status !== 200) throw new Error(`${server.name}: PUT /api/maintenance ${mode} answered ${answer.status}: ${answer.body}`)
  return { ...answer, state: JSON.parse(answer.body) as { mode: string, version: number } }
}

async function currentVersion (server: Server): Promise<number> {
  const answer = await httpRequest(agent, `${server.url}/api/maintenance`, 'GET', {})
  return (JSON.parse(answer.body) as { version: number }).version
}

// ---------------------------------------------------------------------------------------------
// 1. Propagation to a standby instance

async function propagationPart (pair: Pair): Promise<void> {
  const a = await startApp('A-primary', pair.primaryEnv)
  const b = await startApp('B-standby', { ...pair.standbyEnv, QUIESCE_PRIMARY_ORIGIN: a.url })
  console.log(`\n== propagation to a standby instance: ${settings.changes} changes on A (primary), each until B's (standby) event stream reports it ==`)
  let streamError: Error | undefined
  const events = new StateEvents(b.url, '', (err) => { streamError = err })
  try {
    const health = await httpRequest(agent, `${b.url}/healthz`, 'GET', {})
    if (!health.body.includes('"replica"')) throw new Error(`B's /healthz does not say replica: ${health.body}`)
    let version = await currentVersion(a)
    if (await events.arrival(version, 5000) === undefined) throw new Error(`B's event stream did not report the current state (v${version}) within 5 s`)
    const latencies: number[] = []
    let missing = 0
    for (let i = 1; i <= settings.changes; i++) {
      const answer = await changeMode(a, i % 2 === 1 ? 'concurrent' : 'normal', version)
      version = answer.state.version
      const arrived = await events.arrival(version, 5000)
      if (streamError !== undefined) throw streamError
      if (arrived === undefined) missing++
      else latencies.push(arrived - answer.headersAt)
      await sleep(settings.pauseMs + Math.random() * 30)
    }
    if (settings.changes % 2 === 1) await changeMode(a, 'normal', version)
    const stats = { changes: settings.changes, reported: latencies.length, missing, p50Ms: median(latencies), p90Ms: percentile(latencies, 90), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies) }
    console.log(`  A's answer → B's event: p50 ${stats.p50Ms.toFixed(1)} ms, p90 ${stats.p90Ms.toFixed(1)} ms, p99 ${stats.p99Ms.toFixed(1)} ms, max ${stats.maxMs.toFixed(1)} ms; missing ${missing}`)
    if (missing > 0) failures.push(`propagation: ${missing} changes never reached the standby instance`)
    summary.push({ part: 'propagation', measure: `primary instance's answer → standby instance's event, p50 / p99 (${latencies.length} changes)`, value: `${stats.p50Ms.toFixed(1)} / ${stats.p99Ms.toFixed(1)} ms` })
    report.propagation = stats
  } finally {
    events.close()
    await stopServer(b)
    await stopServer(a)
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Own writes under 500 ms of replica lag

async function ownWritesPart (pair: Pair): Promise<void> {
  const a = await startApp('A-reads-on-replica', { ...pair.primaryEnv, QUIESCE_REPLICA_URLS: pair.standby.url() })
  console.log(`\n== own writes: ${settings.writers} API clients save and read back at once, ${settings.saves} times each, the replica held 500 ms behind ==`)
  try {
    await pair.standby.setApplyDelay(500)
    const visitor = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const tally = { ownReads: 0, ownStale: 0, ownFromReplica: 0, laterReads: 0, laterStale: 0, laterFromReplica: 0, visitorReads: 0, visitorStale: 0, visitorFromReplica: 0, writesRefused: 0 }
    // Each client's credentials verified once, one after the other: a burst of first sign-ins
    // from one address is what the sign-in limits refuse.
    for (let index = 1; index <= settings.writers; index++) await httpRequest(agent, `${a.url}/api/docs?limit=1`, 'GET', { authorization: basicAuth(`writer${index}`, WRITER_PASSWORD) })
    await Promise.all(Array.from({ length: settings.writers }, async (_, index) => {
      const name = `writer${index + 1}`
      const auth = basicAuth(name, WRITER_PASSWORD)
      const own = new http.Agent({ keepAlive: true, maxSockets: 1 })
      let readAfter: string | undefined
      for (let save = 1; save <= settings.saves; save++) {
        const token = `${name}-save-${save}`
        const written = await httpRequest(own, `${a.url}/api/docs/own-${name}`, 'PUT', { authorization: auth }, { title: `Own ${name}`, body: `token:${token}` })
        if (written.status !== 200 && written.status !== 201) {
          if (tally.writesRefused++ === 0) console.log(`  a save was refused: ${written.status} ${written.body.slice(0, 200)}`)
          continue
        }
        readAfter = headerOf(written.headers, 'quiesce-read-after') ?? readAfter
        const read = await httpRequest(own, `${a.url}/api/docs/own-${name}`, 'GET', { authorization: auth, ...(readAfter === undefined ? {} : { 'quiesce-read-after': readAfter }) })
        tally.ownReads++
        if (read.status !== 200 || !read.body.includes(`token:${token}`)) tally.ownStale++
        if (headerOf(read.headers, 'quiesce-replica') !== undefined) tally.ownFromReplica++
        const seen = await httpRequest(visitor, `${a.url}/api/docs/own-${name}`, 'GET', {})
        tally.visitorReads++
        if (seen.status !== 200 || !seen.body.includes(`token:${token}`)) tally.visitorStale++
        if (headerOf(seen.headers, 'quiesce-replica') !== undefined) tally.visitorFromReplica++
        // A while later the replica has caught up with the save, and serves the person's reads.
        await sleep(600 + Math.random() * 400)
        const later = await httpRequest(own, `${a.url}/api/docs/own-${name}`, 'GET', { authorization: auth, 'quiesce-read-after': readAfter! })
        tally.laterReads++
        if (later.status !== 200 || !later.body.includes(`token:${token}`)) tally.laterStale++
        if (headerOf(later.headers, 'quiesce-replica') !== undefined) tally.laterFromReplica++
      }
    }))
    console.log(`  own reads right after the save: ${tally.ownReads}, stale or missing ${tally.ownStale} (must be 0), served by the replica ${tally.ownFromReplica}; writes refused ${tally.writesRefused}`)
    console.log(`  own reads 0.6–1 s later: ${tally.laterReads}, stale ${tally.laterStale} (must be 0), served by the replica ${tally.laterFromReplica}`)
    console.log(`  a visitor's reads of the same documents: ${tally.visitorReads}, older than the save ${tally.visitorStale}, served by the replica ${tally.visitorFromReplica}`)
    if (tally.laterStale > 0) failures.push(`own-writes: ${tally.laterStale} later reads did not show the reader's own save`)
    if (tally.ownStale > 0) failures.push(`own-writes: ${tally.ownStale} reads did not show the reader's own save`)
    if (tally.writesRefused > 0) failures.push(`own-writes: ${tally.writesRefused} saves were refused`)
    summary.push({ part: 'own-writes', measure: `own reads right after a save under 500 ms lag: stale or missing (of ${tally.ownReads}; ${tally.ownFromReplica} served by the replica)`, value: String(tally.ownStale) })
    summary.push({ part: 'own-writes', measure: `own reads 0.6–1 s after the save: stale (of ${tally.laterReads}; ${tally.laterFromReplica} served by the replica)`, value: String(tally.laterStale) })
    summary.push({ part: 'own-writes', measure: `a visitor's reads right after: older than the save (of ${tally.visitorReads}; ${tally.visitorFromReplica} by the replica)`, value: String(tally.visitorStale) })
    report.ownWrites = tally
  } finally {
    await pair.standby.setApplyDelay(0)
    await stopServer(a)
  }
}

function headerOf (headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  return typeof value === 'string' ? value : undefined
}

// ---------------------------------------------------------------------------------------------
// 3. Read throughput, replica against primary

async function readsPart (pair: Pair): Promise<void> {
  const withReplica = await startApp('reads-on-replica', { ...pair.primaryEnv, QUIESCE_REPLICA_URLS: pair.standby.url() })
  const primaryOnly = await startApp('primary-only', pair.primaryEnv)
  const [{ slug }] = await queryDatabase<{ slug: string }>(pair.primaryEnv.QUIESCE_DATABASE_URL!, 'select slug from document order by id limit 1') as [{ slug: string }]
  const url = `/api/docs/${slug}`
  console.log(`\n== reads: GET ${url} anonymously, ${settings.connections} connections, ${settings.rounds} rounds of ${settings.duration} s per server ==`)
  try {
    const probe = await httpRequest(agent, withReplica.url + url, 'GET', {})
    if (headerOf(probe.headers, 'quiesce-replica') === undefined) {
      await sleep(1000)
      const again = await httpRequest(agent, withReplica.url + url, 'GET', {})
      if (headerOf(again.headers, 'quiesce-replica') === undefined) throw new Error('the replica is not serving reads')
    }
    for (const server of [withReplica, primaryOnly]) await getRun(server, url, 2, settings.connections, 0)
    const runs: RunResult[] = []
    for (let round = 1; round <= settings.rounds; round++) {
      for (const server of round % 2 === 1 ? [withReplica, primaryOnly] : [primaryOnly, withReplica]) {
        const run = await getRun(server, url, settings.duration, settings.connections, round)
        runs.push(run)
        console.log(`  round ${round} ${server.name.padEnd(16)} ${fmt(run.rps).padStart(6)} req/s  p50 ${run.p50Ms} ms  p99 ${run.p99Ms} ms  non-2xx ${run.non2xx}  errors ${run.errors}`)
      }
    }
    const rate = (name: string) => median(runs.filter((run) => run.server === name).map((run) => run.rps))
    const ratio = rate(withReplica.name) / rate(primaryOnly.name)
    console.log(`  median: reads on the replica ${fmt(rate(withReplica.name))} req/s, on the primary alone ${fmt(rate(primaryOnly.name))} req/s; ratio ${ratio.toFixed(3)}`)
    if (runs.some((run) => run.non2xx + run.errors > 0)) failures.push('reads: some reads failed')
    summary.push({ part: 'reads', measure: 'req/s, reads on the replica / on the primary alone (one machine, two cores)', value: `${fmt(rate(withReplica.name))} / ${fmt(rate(primaryOnly.name))} = ${ratio.toFixed(3)}` })
    report.reads = { runs, ratio }
  } finally {
    await stopServer(withReplica)
    await stopServer(primaryOnly)
  }
}

// ---------------------------------------------------------------------------------------------
// The run

async function main (): Promise<void> {
  const began = performance.now()
  console.log(`quiesce cluster benchmark: node ${process.version}, ${os.cpus().length} CPUs shared by the primary, the standby and every instance; load ${load().loadavg1.toFixed(1)}${load().note}`)
  console.log(await ensureBuilt())
  const dataDir = temporaryDataDir('quiesce-bench-cluster-')
  const pair = await buildPair(dataDir)
  const parts: Record<typeof PARTS[number], (pair: Pair) => Promise<void>> = { propagation: propagationPart, 'own-writes': ownWritesPart, reads: readsPart }
  for (const name of PARTS) {
    if (!settings.only.includes(name)) continue
    await runPart(failures, name, () => parts[name](pair))
  }
  console.log(`\n== summary (load at start ${(report.loadAtStart as number).toFixed(1)}, now ${load().loadavg1.toFixed(1)}) ==`)
  console.log(table(['part', 'measure', 'value'], summary.map((row) => [row.part, row.measure, row.value])))
  report.summary = summary
  finishReport('cluster', report, failures, began)
}

await runMain(main)
