/**
 * `npm run bench:soak`: the long soak (issue 7, item 7). One `quiesce serve` process per database
 * (from the sources, with test/helpers/soak-probe.ts inside it, as test/soak.test.ts runs it);
 * 1,000 event streams opened and closed, then 60 s of mixed load (4 readers, 2 searchers,
 * 3 writers, a sign-in/sign-out loop, event streams opened and closed, a manager switching
 * normal → concurrent → normal → exclusive every 1.5 s). Between the phases the probe reports
 * the heap after GC, the RSS, active handles by type, file descriptors and open client
 * connections; PostgreSQL's own count of the server's connections is read as well. A second,
 * shorter round follows: from the end of the first round to the end of the second nothing may
 * grow beyond test/helpers/soak.ts's LEAK_LIMITS. Exit code 1 on a finding or an unexpected
 * answer.
 *
 *   BENCH_SOAK_SECONDS=60       mixed load of the first round
 *   BENCH_SOAK_STREAMS=1000     event streams per round
 *   BENCH_SOAK_SECOND_ROUND=20  mixed load of the second round, s
 *   BENCH_DATABASES=sqlite,postgres
 * Results: bench/results/soak-<time>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DatabaseKind } from '../test/helpers/databases.js'
import { churnStreams, leakFindings, mixedLoad, postgresConnections, quiet, soakSummary, startSoakSite } from '../test/helpers/soak.js'
import { RESULTS_DIR, envNumber, newReport } from './lib.js'

const seconds = envNumber('BENCH_SOAK_SECONDS', 60)
const streams = envNumber('BENCH_SOAK_STREAMS', 1000)
const secondRound = envNumber('BENCH_SOAK_SECOND_ROUND', 20)
const kinds = (process.env.BENCH_DATABASES ?? 'sqlite,postgres').split(',').map((kind) => kind.trim()) as DatabaseKind[]

const report = newReport({ seconds, streams, secondRound })
let failed = false

for (const kind of kinds) {
  const site = await startSoakSite(kind)
  try {
    const child = site.server.child
    await churnStreams(site.server.url, 200, 20)
    await mixedLoad(site.server.url, 5)
    const before = await quiet(child)
    const rounds = []
    for (const [i, duration] of [seconds, secondRound].entries()) {
      const streamRun = await churnStreams(site.server.url, streams, 50)
      const loadRun = await mixedLoad(site.server.url, duration)
      await quiet(child)
      // Idle PostgreSQL clients leave their pools after 10 s: wait for that, so they count as gone.
      await sleep(11_000)
      rounds.push({ streams: streamRun, load: loadRun, after: await quiet(child), postgres: await postgresConnections(site) })
      console.log(`${kind}: round ${i + 1} done`)
    }
    console.log(soakSummary(`soak on ${kind}: ${streams} streams + ${seconds} s, then ${streams} streams + ${secondRound} s`, before, rounds))
    const findings = [...leakFindings(before, rounds[0]!.after).map((f) => `round 1: ${f}`), ...leakFindings(rounds[0]!.after, rounds[1]!.after).map((f) => `round 2: ${f}`)]
    const unexpected = rounds.flatMap((round) => round.load.unexpected)
    const streamFailures = rounds.reduce((sum, round) => sum + round.streams.failed + round.load.streams.failed, 0)
    console.log(`  findings: ${findings.length === 0 ? 'none' : findings.join('; ')}; unexpected answers ${unexpected.length}; failed streams ${streamFailures}`)
    if (findings.length > 0 || unexpected.length > 0 || streamFailures > 0) failed = true
    report[kind] = { before, rounds, findings, unexpected: unexpected.slice(0, 50), streamFailures }
  } finally {
    await site.close()
  }
}

mkdirSync(RESULTS_DIR, { recursive: true })
const file = path.join(RESULTS_DIR, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
writeFileSync(file, JSON.stringify(report, null, 2))
console.log(`results: ${path.relative(process.cwd(), file)}`)
if (failed) process.exitCode = 1
