/**
 * The short soak (issue 7, item 7): a probed `quiesce serve` process takes event streams opened
 * and closed and a few seconds of mixed load across mode changes, twice; what it holds after
 * garbage collection must not grow from the first round to the second, and the same check must
 * catch a planted leak. The long version is `npm run bench:soak` (bench/soak.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DATABASE_KINDS } from './helpers/databases.js'
import { churnStreams, leakFindings, mixedLoad, plantLeak, postgresConnections, quiet, soakSummary, startSoakSite, type SoakSite } from './helpers/soak.js'

const STREAMS = 300
const SECONDS = 4

describe.each(DATABASE_KINDS)('soak on %s', (kind) => {
  let site: SoakSite

  beforeAll(async () => {
    site = await startSoakSite(kind)
    // Warm-up: caches, prepared statements, pools and JIT settle before anything is measured.
    await churnStreams(site.server.url, 100, 20)
    await mixedLoad(site.server.url, 2)
  }, 90_000)
  afterAll(async () => { await site?.close() }, 60_000)

  it(`${STREAMS} event streams and ${SECONDS} s of mixed load, twice: nothing stays behind, answers stay fast`, async () => {
    const child = site.server.child
    const rounds = []
    const first = await quiet(child)
    for (let round = 1; round <= 2; round++) {
      const streams = await churnStreams(site.server.url, STREAMS, 50)
      const load = await mixedLoad(site.server.url, SECONDS)
      rounds.push({ streams, load, after: await quiet(child), postgres: await postgresConnections(site) })
    }
    console.log(soakSummary(`soak on ${kind}`, first, rounds))
    for (const { streams, load, postgres } of rounds) {
      expect(streams).toMatchObject({ opened: STREAMS, failed: 0 })
      expect(load.unexpected).toEqual([])
      expect(load.switches).toBeGreaterThanOrEqual(2)
      expect(load.streams.failed).toBe(0)
      // Bounded, on a loaded machine: nothing waits for seconds.
      for (const [what, l] of Object.entries(load.latency)) expect(l.p99, `${what} p99 ms`).toBeLessThan(3000)
      if (postgres !== undefined) expect(postgres).toBeLessThanOrEqual(21)
    }
    expect(leakFindings(rounds[0]!.after, rounds[1]!.after)).toEqual([])
    expect(leakFindings(first, rounds[1]!.after).filter((finding) => !finding.startsWith('heap'))).toEqual([])
  }, 180_000)

  it('the same check catches a planted leak (every request kept)', async () => {
    const child = site.server.child
    const before = await quiet(child)
    await plantLeak(child)
    await churnStreams(site.server.url, STREAMS, 50)
    await mixedLoad(site.server.url, SECONDS)
    const after = await quiet(child)
    const findings = leakFindings(before, after)
    console.log(`soak on ${kind} with a planted leak: ${findings.join('; ')}`)
    expect(findings.some((finding) => finding.startsWith('heap'))).toBe(true)
  }, 120_000)
})
