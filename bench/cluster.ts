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
 *
 * Not part of the test suite. Environment (all optional):
 *   BENCH_CHANGES=100     mode changes
 *   BENCH_PAUSE_MS=30     pause after each change, plus a random 0–30 ms (off the poll's beat)
 *   BENCH_DOCS=1000       documents seeded on the primary
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { PostgresServer } from '../test/helpers/postgres-server.js'
import {
  ROOT, RESULTS_DIR, basicAuth, ensureBuilt, envNumber, fmt, gitState, httpRequest, load, machine, median, onCleanup, percentile,
  runCli, runMain, startServer, StateEvents, stopServer, table, type Server,
} from './lib.js'

const settings = {
  changes: envNumber('BENCH_CHANGES', 100),
  pauseMs: envNumber('BENCH_PAUSE_MS', 30, 0),
  docs: envNumber('BENCH_DOCS', 1000),
}

const APP_SERVER = path.join(ROOT, 'bench/app-server.ts')
const MANAGER = 'benchmanager'
const MANAGER_PASSWORD = `bench-${randomBytes(12).toString('hex')}`
const MANAGER_AUTH = basicAuth(MANAGER, MANAGER_PASSWORD)
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })

const failures: string[] = []
const summary: Array<{ part: string, measure: string, value: string }> = []
const report: Record<string, unknown> = { startedAt: new Date().toISOString(), machine: machine(), git: gitState(), settings, loadAtStart: load().loadavg1 }

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
// The run

async function main (): Promise<void> {
  const began = performance.now()
  console.log(`quiesce cluster benchmark: node ${process.version}, ${os.cpus().length} CPUs shared by the primary, the standby and every instance; load ${load().loadavg1.toFixed(1)}${load().note}`)
  console.log(await ensureBuilt())
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'quiesce-bench-cluster-'))
  onCleanup(async () => rmSync(dataDir, { recursive: true, force: true }))
  const pair = await buildPair(dataDir)
  try {
    await propagationPart(pair)
  } catch (err) {
    console.error(`\npropagation failed: ${(err as Error).stack ?? String(err)}`)
    failures.push(`propagation failed: ${(err as Error).message.split('\n')[0]}`)
  }
  console.log(`\n== summary (load at start ${(report.loadAtStart as number).toFixed(1)}, now ${load().loadavg1.toFixed(1)}) ==`)
  console.log(table(['part', 'measure', 'value'], summary.map((row) => [row.part, row.measure, row.value])))
  report.summary = summary
  report.failures = failures
  report.wallSeconds = (performance.now() - began) / 1000
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = path.join(RESULTS_DIR, `cluster-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n')
  console.log(`\nresults: ${path.relative(ROOT, file)} (wall time ${fmt((performance.now() - began) / 1000, 1)} s)`)
  if (failures.length > 0) {
    console.log(`FAILED checks:\n  ${failures.join('\n  ')}`)
    process.exitCode = 1
  }
}

await runMain(main)
