/**
 * The chaos history check (issue 7, item 1): three `quiesce serve` processes on one database,
 * 50 writers over real HTTP (members with Basic credentials and the API or with a session and
 * the forms, the maintainer, the emergency user, each request to a random instance) and a
 * manager making random mode changes through PUT /api/maintenance (managers who are not the
 * maintainer, members, stale versions, two at once and emergency take-overs among them). Every
 * request and answer is recorded; afterwards test/helpers/chaos-check.ts checks the history
 * against the database (see there for the rules).
 *
 * QUIESCE_CHAOS_SWITCHES=N   applied changes per database (default 200; the long run: 1000)
 * QUIESCE_CHAOS_PLANT=F      the fault planted into one instance for the second run (default
 *                            no-guard; cached-guard is the subtle one: see chaos-faults.ts)
 * QUIESCE_CHAOS_KINDS=sqlite,postgres,replica   the databases (default all three; replica: a
 *                            throwaway PostgreSQL primary and hot standby, the instances reading
 *                            through the standby with QUIESCE_REPLICA_URLS, half the switches)
 * `npm run test:chaos` runs this file alone.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeEmergencyUser } from '../app/auth/access-file.js'
import { hashPassword } from '../app/auth/passwords.js'
import { insertUser } from '../app/auth/users.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { checkHistory, formatReport, RULES, type ChaosReport, type ChaosRules, type ChaosSnapshot, type Op } from './helpers/chaos-check.js'
import { maxAuditId, ownSlug, readSite, runChaos, snapshotAfter, type ChaosCast, type ChaosInstance, type ChaosRun } from './helpers/chaos.js'
import { ROOT, startInstance, type Instance } from './helpers/cluster.js'
import { createTestDatabase, type TestDatabase } from './helpers/databases.js'
import { basicAuth, request } from './helpers/http-client.js'
import { PostgresServer } from './helpers/postgres-server.js'
import { until } from './helpers/wait.js'

const SWITCHES = Number(process.env.QUIESCE_CHAOS_SWITCHES ?? 200)
const PLANTED = process.env.QUIESCE_CHAOS_PLANT ?? 'no-guard'

/** Where a chaos run's three instances keep the site. */
interface Setting {
  kind: 'sqlite' | 'postgres' | 'replica'
  switches: number
  /** The site's database, and what every instance adds to its environment. */
  open (): Promise<{ testDatabase: TestDatabase, env: Record<string, string> }>
}

const SETTINGS: Setting[] = [
  { kind: 'sqlite', switches: SWITCHES, open: async () => ({ testDatabase: await createTestDatabase('sqlite'), env: {} }) },
  { kind: 'postgres', switches: SWITCHES, open: async () => ({ testDatabase: await createTestDatabase('postgres'), env: {} }) },
  {
    // Reads go to a hot standby once it has replayed each person's last write; commits, their
    // guard and retries to the primary. The same rules must hold.
    kind: 'replica',
    switches: Math.max(60, Math.round(SWITCHES / 2)),
    async open () {
      const primary = await PostgresServer.create({ max_connections: 100 })
      const standby = await primary.createStandby()
      const dataDir = mkdtempSync(path.join(os.tmpdir(), 'quiesce-chaos-replica-'))
      const drop = async () => {
        await standby.destroy()
        await primary.destroy()
        rmSync(dataDir, { recursive: true, force: true })
      }
      return { testDatabase: { url: { kind: 'postgres', url: primary.url() }, dataDir, drop }, env: { QUIESCE_REPLICA_URLS: standby.url() } }
    },
  },
]
const KINDS = process.env.QUIESCE_CHAOS_KINDS?.split(',') ?? SETTINGS.map((setting) => setting.kind)
const SHARED = Array.from({ length: 10 }, (_, i) => `shared-${i}`)
const person = (name: string) => ({ name, password: `${name}-chaos-password` })
const CAST: ChaosCast = {
  boss: person('boss'),
  deputy: person('deputy'),
  root: person('root'),
  members: Array.from({ length: 48 }, (_, i) => person(`m${String(i + 1).padStart(2, '0')}`)),
}
const RULES_OF_THE_SITE: ChaosRules = { emergency: CAST.root.name, gateLagMs: 2000, sharedSlugs: new Set(SHARED) }
// Generous: a loaded 2-core machine, three servers, 50 clients.
const RUN_TIMEOUT_MS = 120_000 + SWITCHES * 600

async function prepareSite (testDatabase: TestDatabase, database: Database): Promise<void> {
  const hashes = await Promise.all([CAST.boss, CAST.deputy, CAST.root, ...CAST.members].map(async (p) => [p.name, await hashPassword(p.password)] as const))
  const hash = new Map(hashes)
  await insertUser(database.writer, { username: CAST.boss.name, passwordHash: hash.get(CAST.boss.name)!, role: 'manager' })
  await insertUser(database.writer, { username: CAST.deputy.name, passwordHash: hash.get(CAST.deputy.name)!, role: 'manager' })
  for (const member of CAST.members) await insertUser(database.writer, { username: member.name, passwordHash: hash.get(member.name)!, role: 'member' })
  await writeEmergencyUser(path.join(testDatabase.dataDir, 'access'), CAST.root.name, hash.get(CAST.root.name)!)
}

/** The documents every run starts from, written through the site like any other write. */
async function addDocuments (instance: ChaosInstance): Promise<void> {
  const agent = new http.Agent({ keepAlive: true })
  try {
    const slugs = [...SHARED, ...[CAST.boss, CAST.root, ...CAST.members].map((p) => ownSlug(p.name))]
    for (const slug of slugs) {
      const answer = await request(agent, `${instance.url}/api/docs/${slug}`, {
        method: 'PUT',
        headers: { authorization: basicAuth(CAST.boss.name, CAST.boss.password) },
        body: { title: `Start ${slug}`, body: `chaos-token:init-${slug}` },
      })
      if (answer.status !== 201) throw new Error(`PUT /api/docs/${slug} answered ${answer.status}: ${answer.body}`)
    }
  } finally {
    agent.destroy()
  }
}

interface CheckedRun {
  run: ChaosRun
  snapshot: ChaosSnapshot
  report: ChaosReport
  /** CPU the three servers and this process used during the run. */
  cpuSeconds: number
}

async function checkedRun (database: Database, instances: Instance[], runId: string, switches: number): Promise<CheckedRun> {
  const cpuBefore = instances.reduce((sum, instance) => sum + instance.cpuSeconds(), 0) + process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6
  const initial = await readSite(database)
  const auditAfter = await maxAuditId(database)
  const run = await runChaos({
    instances,
    cast: CAST,
    switches,
    formMembers: 12,
    sharedSlugs: SHARED,
    runId,
    pauseMs: [0, 20],
    thinkMs: [40, 160],
    database,
    deadlineMs: RUN_TIMEOUT_MS - 60_000,
  })
  const cpuSeconds = instances.reduce((sum, instance) => sum + instance.cpuSeconds(), 0) + process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 - cpuBefore
  const snapshot = await snapshotAfter(database, initial, auditAfter, run.commits)
  return { run, snapshot, report: checkHistory(run.ops, snapshot, RULES_OF_THE_SITE), cpuSeconds }
}

/** Keeps a failing run's history for a closer look. */
function keepHistory (kind: string, runId: string, checked: CheckedRun): string {
  const dir = path.join(ROOT, 'test-results')
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `chaos-${kind}-${runId}.json`)
  writeFileSync(file, JSON.stringify({ report: checked.report, ops: checked.run.ops, snapshot: checked.snapshot }, null, 1))
  return file
}

describe.each(SETTINGS.filter((setting) => KINDS.includes(setting.kind)))('chaos: three instances on one $kind database', ({ kind, switches: SWITCHES, open }) => {
  let testDatabase: TestDatabase
  let env: Record<string, string>
  let database: Database
  let instances: Instance[] = []
  let main: CheckedRun

  beforeAll(async () => {
    ({ testDatabase, env } = await open())
    database = await openDatabase(testDatabase.url)
    await prepareSite(testDatabase, database)
    instances = await Promise.all(['chaos-a', 'chaos-b', 'chaos-c'].map((id) => startInstance(testDatabase, id, { env })))
    await addDocuments(instances[0]!)
  }, 120_000)

  afterAll(async () => {
    await Promise.all(instances.map((instance) => instance.stop()))
    await database?.destroy()
    await testDatabase?.drop()
  }, 60_000)

  it(`${SWITCHES} mode changes under 50 writers: nothing forbidden commits, nothing acknowledged is lost, every attempt is audited, every instance applies the last version`, async () => {
    main = await checkedRun(database, instances, 'r', SWITCHES)
    const { report } = main
    const fromReplica = main.run.ops.filter((op) => op.replica !== undefined).length
    console.log(formatReport(`chaos on ${kind}`, report, main.run.durationMs) + `\n  CPU used by the servers and the clients: ${main.cpuSeconds.toFixed(1)} s (load average ${os.loadavg()[0]!.toFixed(1)})` +
      (kind === 'replica' ? `\n  answers served from the replica: ${fromReplica} of ${main.run.ops.length}` : ''))
    if (report.violations.length > 0) console.log(`history kept in ${keepHistory(kind, 'r', main)}`)
    expect(report.violations).toEqual([])
    // The run did what it is meant to: many changes, writes in every outcome, both refusals.
    const c = report.counts
    expect(c.switchesApplied).toBeGreaterThanOrEqual(SWITCHES)
    expect(Object.keys(c.switchesRefused).sort()).toEqual(expect.arrayContaining(['403 QUIESCE_NOT_MAINTAINER', '403 QUIESCE_NOT_MANAGER', '409 QUIESCE_STATE_CONFLICT']))
    expect(c.writesByOutcome['503 QUIESCE_READ_ONLY']).toBeGreaterThan(0)
    expect(c.writesByOutcome['503 QUIESCE_EXCLUSIVE']).toBeGreaterThan(0)
    expect(c.writesByOutcome['409 QUIESCE_CONFLICT']).toBeGreaterThan(0)
    expect((c.writesByOutcome['200'] ?? 0) + (c.writesByOutcome['201'] ?? 0) + (c.writesByOutcome['303'] ?? 0)).toBeGreaterThan(SWITCHES)
    expect(c.commitsChecked).toBeGreaterThan(SWITCHES)
    expect(c.auditRowsChecked).toBe(c.switchAttempts)
    expect(c.serverErrors).toBe(0)
    // The reads really went to the replica (each person's own reads included, once it caught up).
    if (kind === 'replica') expect(main.run.ops.filter((op) => op.kind === 'read' && op.replica !== undefined).length).toBeGreaterThan(0)
    else expect(fromReplica).toBe(0)
    for (const instance of instances) expect(instance.errors, instance.id).toEqual([])
    // Every instance shows the state version the run ended on as applied.
    const boss = basicAuth(CAST.boss.name, CAST.boss.password)
    const [state] = await database.writer.selectFrom('maintenance_state').select('version').execute()
    await until('every instance applied the last version', async () => {
      const answer = await request(new http.Agent(), `${instances[0]!.url}/api/instances`, { headers: { authorization: boss } })
      const listed = (JSON.parse(answer.body) as { instances: Array<{ id: string, stateVersion: number, applied: boolean }> }).instances
      return instances.every((instance) => listed.some((row) => row.id === instance.id && row.applied && row.stateVersion === state!.version)) || undefined
    }, 15_000)
  }, RUN_TIMEOUT_MS)

  it('each rule of the check fails on a doctored copy of that history', () => {
    const { ops, commits } = main.run
    const base = main.snapshot
    const rerun = (doctoredOps: Op[], snapshot: Partial<ChaosSnapshot>) => checkHistory(doctoredOps, { ...base, ...snapshot }, RULES_OF_THE_SITE).byRule
    const isAcked = (op: Op) => op.status >= 200 && op.status < 400
    const isWriteOp = (op: Op) => op.kind === 'create' || op.kind === 'update' || op.kind === 'delete'
    const change = (match: (op: Op) => boolean, edit: (op: Op) => Op) => {
      const i = ops.findIndex(match)
      expect(i, 'the history has such a request').toBeGreaterThanOrEqual(0)
      return ops.map((op, j) => (j === i ? edit(op) : op))
    }

    // A member's acknowledged write whose commit landed under a non-normal version.
    const concurrent = [...new Set(base.audit.filter((row) => row.outcome === 'applied' && row.toMode === 'concurrent').map((row) => row.newVersion!))]
    const memberCommit = commits.find((commit) => /^m\d+$/.test(commit.actor ?? ''))!
    expect(rerun(ops, { commits: commits.map((c) => (c === memberCommit ? { ...c, stateVersion: concurrent[0]! } : c)) })).toHaveProperty([RULES.forbidden])
    expect(rerun(ops, { commits: commits.map((c) => (c === memberCommit ? { ...c, stateVersion: null } : c)) })).toHaveProperty([RULES.unstamped])
    // A commit nobody was told about, and an acknowledged write without its commit.
    expect(rerun(ops, { commits: [...commits, { ...memberCommit, id: 1e9 }] })).toHaveProperty([RULES.unacknowledged])
    expect(rerun(ops, { commits: commits.filter((c) => c !== memberCommit) })).toHaveProperty([RULES.lost])
    // A refused write is told it succeeded (it is not in the database): lost.
    const refusedShared = change((op) => op.kind === 'update' && SHARED.includes(op.slug!) && op.status === 503, (op) => ({ ...op, status: 200, code: undefined, version: 1e6 }))
    expect(rerun(refusedShared, {})).toHaveProperty([RULES.lost])
    // An acknowledged update is told it was refused (it is in the database): present.
    const lastOwn = [...ops].reverse().find((op) => op.kind === 'update' && op.slug === ownSlug(op.who) && isAcked(op))!
    const refusedOwn = ops.map((op) => (op === lastOwn ? { ...op, status: 503, code: 'QUIESCE_READ_ONLY', version: undefined } : op))
    expect(rerun(refusedOwn, {})).toHaveProperty([RULES.phantom])
    // The database lost the newest version of a shared document, or holds an older body.
    const shared = base.final.documents.find((doc) => doc.slug === SHARED[0])!
    expect(rerun(ops, { final: { ...base.final, documents: base.final.documents.map((d) => (d === shared ? { ...d, version: d.version - 1 } : d)) } })).toHaveProperty([RULES.lost])
    expect(rerun(ops, { final: { ...base.final, documents: base.final.documents.map((d) => (d === shared ? { ...d, body: 'chaos-token:nobody' } : d)) } })).toHaveProperty([RULES.lost])
    // A write acknowledged to a member although every version it could meet was read-only.
    const switches = ops.filter((op) => op.kind === 'switch' && op.status === 200).sort((a, b) => a.version! - b.version!)
    /** Whether `op` ran entirely between a change to `mode` being acknowledged and the next change being asked for. */
    const within = (op: Op, mode: string) => switches.some((s, i) => s.target === mode && op.start > s.end && i + 1 < switches.length && op.end < switches[i + 1]!.start)
    const inMaintenance = change((op) => isWriteOp(op) && op.code === 'QUIESCE_READ_ONLY' && /^m\d+$/.test(op.who) && within(op, 'concurrent'), (op) => ({ ...op, status: 200, code: undefined }))
    expect(rerun(inMaintenance, {})).toHaveProperty([RULES.forbiddenSeen])
    // A refusal in a stretch of normal mode.
    const normalWrite = change((op) => op.kind === 'create' && op.status === 201 && within(op, 'normal'), (op) => ({ ...op, status: 503, code: 'QUIESCE_READ_ONLY' }))
    expect(rerun(normalWrite, {})).toHaveProperty([RULES.unavailable])
    // Audit: a missing row, a row nobody asked for, a row that says something else.
    const someRow = base.audit.find((row) => row.outcome === 'refused')!
    expect(rerun(ops, { audit: base.audit.filter((row) => row !== someRow) })).toHaveProperty([RULES.auditMissing])
    expect(rerun(ops, { audit: [...base.audit, { ...someRow, id: 1e9, reason: 'forged' }] })).toHaveProperty([RULES.auditUnasked])
    expect(rerun(ops, { audit: base.audit.map((row) => (row === someRow ? { ...row, outcome: 'applied' } : row)) })).toHaveProperty([RULES.auditDiffers])
    const firstApplied = base.audit.find((row) => row.outcome === 'applied')!
    expect(rerun(ops, { audit: base.audit.map((row) => (row === firstApplied ? { ...row, fromMode: row.toMode === 'normal' ? 'normal' : 'exclusive' } : row)) })).toHaveProperty([RULES.chain])
    // A commit stamped with a version that was not in force while its request ran.
    // The emergency user's last such commit: its request ran long after the initial version was
    // replaced (an early one may have waited behind the first switches while they were made).
    const early = [...commits].reverse().find((commit) => commit.actor === CAST.root.name && commit.stateVersion! > base.initial.version + 2)!
    expect(rerun(ops, { commits: commits.map((c) => (c === early ? { ...c, stateVersion: base.initial.version } : c)) })).toHaveProperty([RULES.stampTime])
    // A read that saw something other than the last acknowledged write, and a half-applied write.
    const read = change((op) => op.kind === 'read' && op.status === 200, (op) => ({ ...op, readToken: 'r-someone-else' }))
    expect(rerun(read, {})).toHaveProperty([RULES.read])
    expect(rerun(ops, { catalog: base.catalog.map((row, i) => (i === 0 ? { ...row, body: 'stale' } : row)) })).toHaveProperty([RULES.catalog])
    // Every answer outside the documented ones (here: a 500).
    expect(rerun(change((op) => op.kind === 'read', (op) => ({ ...op, status: 500, code: 'QUIESCE_INTERNAL' })), {})).toHaveProperty([RULES.answer])
  })

  it(`catches a planted fault: one instance with ${PLANTED}`, async () => {
    const healthy = instances.slice(0, 2)
    await instances[2]!.stop()
    instances[2] = await startInstance(testDatabase, 'chaos-c-faulty', { fault: PLANTED, env })
    const switches = PLANTED === 'no-guard' ? 30 : Math.max(60, Math.round(SWITCHES / 2))
    const planted = await checkedRun(database, [...healthy, instances[2]], 'p', switches)
    console.log(formatReport(`chaos on ${kind} with ${PLANTED} planted in chaos-c-faulty`, planted.report, planted.run.durationMs))
    keepHistory(kind, `planted-${PLANTED}`, planted)
    expect(planted.report.counts.forbiddenCommits).toBeGreaterThan(0)
    expect(planted.report.byRule).toHaveProperty([RULES.forbidden])
    // What the clients saw points at the faulty instance, and only at it.
    const seen = planted.report.violations.filter((v) => v.rule === RULES.forbiddenSeen)
    expect(seen.every((v) => v.detail.includes('@chaos-c-faulty '))).toBe(true)
  }, RUN_TIMEOUT_MS)
})
