/**
 * Where the time of an anonymous `GET /docs/:slug` goes: the ceiling server, the app, and
 * bench/variants-server.ts with the app's pieces added one at a time (+piece) or all but one
 * (-piece), or all with a proposed change (all/…), measured in the same run
 * in rotating order. Reports each server's rate and the microseconds per request it adds to
 * the base variant, measured as the server process's CPU time per answer (steadier than req/s
 * when other work shares the machine).
 *
 * Not part of `npm run bench`; run it when the app falls short of the ceiling:
 *   node --import tsx bench/variants.ts
 * env: BENCH_DURATION=3, BENCH_ROUNDS=5, BENCH_WARMUP=2, BENCH_CONNECTIONS=10,
 *      BENCH_VARIANTS=comma list of names below (default: ceiling, base, all, each -piece, app),
 *      BENCH_CPU_PROF=DIR
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import {
  APP_BIN, ROOT, RESULTS_DIR, ensureBuilt, envNumber, fmt, getRun, gitState, load, machine, median, onCleanup, runCli, runMain,
  startServer, table, type RunResult, type Server,
} from './lib.js'

const settings = {
  duration: envNumber('BENCH_DURATION', 3),
  rounds: envNumber('BENCH_ROUNDS', 5),
  warmup: envNumber('BENCH_WARMUP', 2),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  cpuProfDir: process.env.BENCH_CPU_PROF === undefined || process.env.BENCH_CPU_PROF === '' ? undefined : path.resolve(process.env.BENCH_CPU_PROF),
}

const PIECES = ['helmet', 'session', 'kysely', 'uow', 'maintenance', 'logger', 'extras']

/**
 * name → pieces (see bench/variants-server.ts); `ceiling` and `app` are the two real servers.
 * `+piece` is the base with one piece, `-piece` all pieces but one (what removing it would save).
 */
const VARIANTS: Record<string, string | null> = {
  ceiling: null,
  base: '',
  ...Object.fromEntries(PIECES.map((piece) => [`+${piece}`, piece])),
  all: PIECES.join(','),
  ...Object.fromEntries(PIECES.map((piece) => [`-${piece}`, PIECES.filter((other) => other !== piece).join(',')])),
  // The proposed changes (see bench/variants-server.ts), on top of all pieces:
  'all/static-headers': PIECES.map((piece) => (piece === 'helmet' ? 'static-headers' : piece)).join(','),
  'all/md-cache': [...PIECES, 'md-cache'].join(','),
  'all/both': [...PIECES.map((piece) => (piece === 'helmet' ? 'static-headers' : piece)), 'md-cache'].join(','),
  app: null,
}
const DEFAULT_VARIANTS = ['ceiling', 'base', 'all', ...PIECES.map((piece) => `-${piece}`), 'app']

const chosen = (process.env.BENCH_VARIANTS ?? DEFAULT_VARIANTS.join(',')).split(',').map((name) => name.trim()).filter(Boolean)
for (const name of chosen) if (!(name in VARIANTS)) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(', ')}`)

async function main (): Promise<void> {
  const git = gitState()
  console.log(`GET /docs/:slug, variants: node ${process.version}, ${os.cpus().length} CPUs; commit ${git.commit}${git.dirty.length > 0 ? ' (working tree has uncommitted changes under app/ or views/)' : ''}; load ${load().loadavg1.toFixed(1)}${load().note}`)
  console.log(`${settings.connections} connections, pipelining 1; warm-up ${settings.warmup} s each, ${settings.rounds} rounds of ${settings.duration} s each, order rotating`)
  console.log(await ensureBuilt())

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'quiesce-variants-'))
  onCleanup(async () => rmSync(dataDir, { recursive: true, force: true }))
  const sqliteFile = path.join(dataDir, 'quiesce.sqlite')
  const appEnv = {
    HOST: '127.0.0.1',
    PORT: '0',
    NODE_ENV: 'production',
    QUIESCE_DATA_DIR: dataDir,
    QUIESCE_DATABASE_URL: `sqlite:${sqliteFile}`,
    QUIESCE_LOG_LEVEL: 'warn',
  }
  await runCli(['seed', '--docs', '1000'], appEnv)
  const db = new BetterSqlite3(sqliteFile, { readonly: true })
  const slug = db.prepare('select slug from document order by id limit 1').pluck().get() as string
  db.close()
  const urlPath = `/docs/${slug}`

  const servers: Server[] = []
  const profiling = { cpuProfDir: settings.cpuProfDir }
  const benchEnv = { HOST: '127.0.0.1', PORT: '0', NODE_ENV: 'production', BENCH_DB_FILE: sqliteFile }
  for (const name of chosen) {
    const pieces = VARIANTS[name]
    if (name === 'app') servers.push(await startServer(name, [APP_BIN, 'serve'], appEnv, profiling))
    else if (name === 'ceiling') servers.push(await startServer(name, ['--import', 'tsx', path.join(ROOT, 'bench/ceiling-server.ts')], benchEnv, profiling))
    else servers.push(await startServer(name, ['--import', 'tsx', path.join(ROOT, 'bench/variants-server.ts')], { ...benchEnv, BENCH_WITH: pieces! }, profiling))
  }

  const pages = await Promise.all(servers.map(async (server) => {
    const response = await fetch(server.url + urlPath)
    return { status: response.status, html: await response.text() }
  }))
  const differing = servers.filter((_, i) => pages[i]!.status !== 200 || pages[i]!.html !== pages[0]!.html).map((server) => server.name)
  console.log(`GET ${urlPath}: ${differing.length === 0 ? 'every server answers 200 with the same page' : `DIFFERENT page or status from: ${differing.join(', ')}`}`)

  const runs: RunResult[] = []
  for (const server of servers) runs.push(await getRun(server, urlPath, settings.warmup, settings.connections, 0))
  for (let round = 1; round <= settings.rounds; round++) {
    const offset = (round - 1) % servers.length
    for (const server of [...servers.slice(offset), ...servers.slice(0, offset)]) {
      const run = await getRun(server, urlPath, settings.duration, settings.connections, round)
      runs.push(run)
      process.stdout.write(`  round ${round} ${server.name.padEnd(12)} ${fmt(run.rps).padStart(7)} req/s\n`)
    }
  }

  // Other work on the machine only ever adds time, so besides the median the best round is shown:
  // the highest rate and the least CPU time per answer are the steadiest estimates of the cost.
  const measured = runs.filter((run) => run.round > 0)
  const of = (name: string) => measured.filter((run) => run.server === name)
  const baseName = chosen.includes('base') ? 'base' : chosen[0]!
  const baseRate = median(of(baseName).map((run) => run.rps))
  const baseCpu = Math.min(...of(baseName).map((run) => run.cpuMicrosPerAnswer))
  const rows = servers.map((server) => {
    const mine = of(server.name)
    const cpuMin = Math.min(...mine.map((run) => run.cpuMicrosPerAnswer))
    return {
      name: server.name,
      pieces: VARIANTS[server.name] ?? (server.name === 'app' ? 'the built app (dist/)' : 'bench/ceiling-server.ts'),
      rates: mine.map((run) => run.rps),
      medianRate: median(mine.map((run) => run.rps)),
      bestRate: Math.max(...mine.map((run) => run.rps)),
      ratioToBase: median(mine.map((run) => run.rps)) / baseRate,
      cpuMicrosMedian: median(mine.map((run) => run.cpuMicrosPerAnswer)),
      cpuMicrosMin: cpuMin,
      addedCpuMicros: cpuMin - baseCpu,
      p99Ms: median(mine.map((run) => run.p99Ms)),
      non2xx: mine.reduce((sum, run) => sum + run.non2xx + run.errors, 0),
    }
  })
  console.log('\n' + table(
    ['server', 'pieces', 'req/s per round', 'median', 'best', `median ÷ ${baseName}`, 'CPU µs/req median', 'least', `least − ${baseName}`, 'p99 ms', 'non-2xx'],
    rows.map((row) => [
      row.name, row.pieces || '(none)', row.rates.map((r) => fmt(r)).join(' / '), fmt(row.medianRate), fmt(row.bestRate), row.ratioToBase.toFixed(2),
      fmt(row.cpuMicrosMedian), fmt(row.cpuMicrosMin), `${row.addedCpuMicros >= 0 ? '+' : ''}${fmt(row.addedCpuMicros)}`, row.p99Ms, row.non2xx,
    ])
  ))

  mkdirSync(RESULTS_DIR, { recursive: true })
  const out = path.join(RESULTS_DIR, `variants-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(out, JSON.stringify({ machine: machine(), git, settings, path: urlPath, samePage: differing.length === 0, rows, runs, loadAtEnd: load().loadavg1 }, null, 2) + '\n')
  console.log(`\nresults: ${path.relative(ROOT, out)} (load now ${load().loadavg1.toFixed(1)}, this benchmark included)`)
  if (differing.length > 0) process.exitCode = 1
}

await runMain(main)
