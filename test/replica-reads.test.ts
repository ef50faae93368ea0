import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import type { Config } from '../app/config.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { PrimaryPositions, replicaCouldNotServe } from '../app/db/replicas.js'
import { formatWalPosition, parseWalPosition } from '../app/db/wal-position.js'
import { assertVersionMatched } from '../app/unit-of-work/unit-of-work.js'
import { READ_AFTER_COOKIE } from '../app/web/replica-reads.js'
import { addUser, basicAuth, testConfig, type Browser } from './helpers/app.js'
import { PostgresServer } from './helpers/postgres-server.js'
import { addPrincipals, signedInBrowser } from './helpers/principals.js'
import { until } from './helpers/wait.js'

const BOB = basicAuth('bob', 'bob-password')
const FORM = 'application/x-www-form-urlencoded'

describe('WAL positions and replica lag', () => {
  it('reads and writes pg_lsn texts, and orders positions as PostgreSQL does', () => {
    expect(parseWalPosition('0/0')).toBe(0n)
    expect(parseWalPosition('16/B374D848')).toBe(0x16B374D848n)
    expect(parseWalPosition('16/b374d848')).toBe(0x16B374D848n)
    expect(formatWalPosition(0x16B374D848n)).toBe('16/B374D848')
    expect(formatWalPosition(parseWalPosition('FFFFFFFF/FFFFFFFF')!)).toBe('FFFFFFFF/FFFFFFFF')
    // By halves, not by text: 0/A0000000 is before 1/0.
    expect(parseWalPosition('0/A0000000')! < parseWalPosition('1/0')!).toBe(true)
    for (const bad of ['', '0', '0/', '/0', '1/2/3', 'G/0', '123456789/0', ' 0/0', '0/0 ']) expect(parseWalPosition(bad), bad).toBeUndefined()
  })

  it('measures lag against the primary\'s flushed positions, so an idle primary does not make a replica look behind', () => {
    const primary = new PrimaryPositions(5000)
    expect(primary.lagMs(100n, 1000)).toBeUndefined()
    // The primary flushed up to 100 and then nothing more for 10 s: a replica at 100 is not behind.
    for (let at = 0; at <= 10_000; at += 100) primary.record(at, 100n)
    expect(primary.lagMs(100n, 10_000)).toBe(0)
    expect(primary.lagMs(150n, 10_050)).toBe(50)
  })

  it('sees a replica that stopped replaying fall behind while the primary goes on', () => {
    const primary = new PrimaryPositions(5000)
    for (let at = 0; at <= 3000; at += 100) primary.record(at, BigInt(at))
    expect(primary.lagMs(3000n, 3000)).toBe(0)
    expect(primary.lagMs(2500n, 3000)).toBe(500)
    expect(primary.lagMs(2550n, 3000)).toBe(500)
    // Behind every sample kept (5 s back, and one older): at least that far behind.
    for (let at = 3100; at <= 20_000; at += 100) primary.record(at, BigInt(at))
    expect(primary.lagMs(0n, 20_000)).toBeGreaterThanOrEqual(5000)
  })

  it('runs a replica read again on the primary when the replica could not serve it, and only then', () => {
    expect(replicaCouldNotServe(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true)
    expect(replicaCouldNotServe(new Error('Connection terminated unexpectedly'))).toBe(true)
    expect(replicaCouldNotServe(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true)
    expect(replicaCouldNotServe(Object.assign(new Error('canceling statement due to conflict with recovery'), { code: '40001' }))).toBe(true)
    expect(replicaCouldNotServe(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe(true)
    expect(replicaCouldNotServe(Object.assign(new Error('syntax error'), { code: '42601' }))).toBe(false)
    expect(replicaCouldNotServe(new Error('a programming error'))).toBe(false)
  })
})

/** The cookies a browser keeps, from each answer's Set-Cookie. */
class CookieJar {
  readonly #cookies = new Map<string, string>()

  constructor (cookie: string) {
    for (const pair of cookie.split('; ')) {
      const [name, value] = pair.split('=') as [string, string]
      this.#cookies.set(name, value)
    }
  }

  take (response: LightMyRequestResponse): void {
    for (const cookie of response.cookies) this.#cookies.set(cookie.name, cookie.value)
  }

  get header (): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('; ')
  }
}

/**
 * Reads from a real hot standby (a throwaway primary and standby of the test's own,
 * test/helpers/postgres-server.ts), the standby's lag injected with recovery_min_apply_delay.
 */
describe('reads from a hot standby', () => {
  let primary: PostgresServer
  let standby: PostgresServer
  let database: Database
  let app: FastifyInstance
  let dataDir: string
  let config: Config
  let ann: Browser
  /** What each attempt of the test routes read, and through which handle. */
  const attempts: Array<{ attempt: number, version: number, fromReplica: boolean }> = []

  beforeAll(async () => {
    primary = await PostgresServer.create()
    const url = await primary.createDatabase('quiesce')
    standby = await primary.createStandby()
    dataDir = mkdtempSync(path.join(tmpdir(), 'quiesce-replica-reads-'))
    config = testConfig({ url: { kind: 'postgres', url }, dataDir, drop: async () => {} }, {
      instanceId: 'replica-reads',
      replicas: { urls: [standby.url('quiesce')], maxLagMs: 2000 },
    })
    database = await openDatabase(config.database, { replicas: config.replicas })
    await addPrincipals({ database }, ['member'])
    await addUser(database, 'bob', 'member')
    app = await buildApp({ config, database })
    // A read that writes what it read, with an optimistic check (a view counter, say): what it
    // read on a stale replica conflicts at commit, and the retry must read from the primary.
    app.get<{ Params: { slug: string } }>('/test/read-and-bump/:slug', async function readAndBump (request) {
      const unitOfWork = request.unitOfWork
      const doc = await unitOfWork.db.selectFrom('document').select(['id', 'version']).where('slug', '=', request.params.slug).executeTakeFirstOrThrow()
      attempts.push({ attempt: unitOfWork.attempt, version: doc.version, fromReplica: unitOfWork.db !== database.reader })
      unitOfWork.stage(async (transaction) => {
        const result = await transaction.updateTable('document').set({ version: doc.version + 1 }).where('id', '=', doc.id).where('version', '=', doc.version).executeTakeFirst()
        assertVersionMatched(result, 'the document')
      })
      return { read: doc.version }
    })
    // A read that takes a while, to be cut off by a replica that stops under it.
    app.get('/test/slow-read', async function slowRead (request) {
      const unitOfWork = request.unitOfWork
      attempts.push({ attempt: unitOfWork.attempt, version: 0, fromReplica: unitOfWork.db !== database.reader })
      await sql`select pg_sleep(0.8)`.execute(unitOfWork.db)
      return { slept: true }
    })
    await app.ready()
    ann = await signedInBrowser(app, 'member')
    await replicaUsable()
  }, 60_000)

  afterAll(async () => {
    await app?.close()
    await standby?.destroy()
    await primary?.destroy()
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
  })

  async function replicaUsable (): Promise<void> {
    await until('the replica to be used for reads', () => database.replicas!.status()[0]!.usable, 20_000)
  }

  async function putDoc (slug: string, title: string, headers: Record<string, string> = {}, expectedVersion?: number) {
    const response = await app.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: BOB, ...headers }, payload: { title, body: `${title}.`, expectedVersion } })
    expect(response.statusCode, response.body).toBeLessThan(300)
    return response
  }

  it('a signed-in person who saves and reloads always sees the save, while an anonymous reader is served the lagging replica', async () => {
    await standby.setApplyDelay(500)
    const jar = new CookieJar(ann.cookie)
    // Right after the save (the replica lacks it), around the moment the replica replays it
    // (500 ms), and after (the replica has it and serves the person again).
    const pauses = [0, 300, 520, 600, 800]
    let fromReplica = 0
    let staleForVisitor = 0
    for (let i = 0; i < 30; i++) {
      const slug = `own-${i >> 1}`
      const title = i % 2 === 0 ? `Own ${i >> 1}` : `Own ${i >> 1}, edited`
      const saved = await app.inject({
        method: 'POST',
        url: i % 2 === 0 ? '/docs' : `/docs/${slug}`,
        headers: { cookie: jar.header, 'content-type': FORM },
        payload: new URLSearchParams({ _csrf: ann.csrf, slug, title, body: `${title}.`, version: i % 2 === 0 ? '' : '1' }).toString(),
      })
      expect(saved.statusCode, saved.body).toBe(303)
      expect(saved.headers['quiesce-replica']).toBeUndefined()
      jar.take(saved)
      expect(saved.cookies.find((cookie) => cookie.name === READ_AFTER_COOKIE)).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' })

      const visitor = await app.inject(`/api/docs/${slug}`)
      expect(visitor.headers['quiesce-replica'], 'a visitor reads from the replica').toBe('replica-1')
      expect(visitor.headers['quiesce-mode']).toBe('normal')
      if (visitor.statusCode === 404 || visitor.json().title !== title) staleForVisitor++

      await sleep(pauses[i % pauses.length]!)
      const reload = await app.inject({ url: saved.headers.location!, headers: { cookie: jar.header } })
      expect(reload.statusCode, `reload ${i}`).toBe(200)
      expect(reload.body, `reload ${i}`).toContain(`<h1>${title}</h1>`)
      if (reload.headers['quiesce-replica'] === 'replica-1') fromReplica++
    }
    // Not everything from the primary: once the replica had replayed the save it served the person.
    expect(fromReplica).toBeGreaterThanOrEqual(6)
    expect(staleForVisitor).toBeGreaterThanOrEqual(20)
  }, 60_000)

  it('an API client that echoes Quiesce-Read-After reads its own writes; one that does not may read the replica\'s past', async () => {
    await standby.setApplyDelay(500)
    await putDoc('api-doc', 'API 0')
    let readAfter: string | undefined
    let stale = 0
    for (let i = 1; i <= 16; i++) {
      // A write reads from the primary: the version it checks is the newest, never the replica's.
      const put = await putDoc('api-doc', `API ${i}`, readAfter === undefined ? {} : { 'quiesce-read-after': readAfter }, i)
      expect(put.statusCode).toBe(200)
      expect(put.json().version).toBe(i + 1)
      readAfter = put.headers['quiesce-read-after'] as string
      expect(readAfter).toMatch(/^[0-9A-F]+\/[0-9A-F]+\.[\w+/]+$/)

      const blind = await app.inject({ url: '/api/docs/api-doc', headers: { authorization: BOB } })
      expect(blind.headers['quiesce-replica']).toBe('replica-1')
      if (blind.json().version !== i + 1) stale++

      await sleep(i % 2 === 0 ? 0 : 650)
      const own = await app.inject({ url: '/api/docs/api-doc', headers: { authorization: BOB, 'quiesce-read-after': readAfter } })
      expect(own.statusCode).toBe(200)
      expect(own.json(), `read ${i}`).toMatchObject({ title: `API ${i}`, version: i + 1 })
    }
    expect(stale).toBeGreaterThanOrEqual(12)

    // A position that is not ours (tampered, or signed with an old secret) reads from the primary.
    const forged = await app.inject({ url: '/api/docs/api-doc', headers: { 'quiesce-read-after': '0/0.forged' } })
    expect(forged.statusCode).toBe(200)
    expect(forged.headers['quiesce-replica']).toBeUndefined()
  }, 60_000)

  it('GET and HEAD read from the replica; a reset link, which a manager may have made a moment ago, from the primary', async () => {
    await standby.setApplyDelay(0)
    await putDoc('methods', 'Methods')
    await standby.caughtUp()
    await until('the replica to have it', () => database.replicas!.choose(0n) !== undefined)
    for (const method of ['GET', 'HEAD'] as const) {
      const response = await app.inject({ method, url: '/api/docs/methods' })
      expect(response.statusCode, method).toBe(200)
      expect(response.headers['quiesce-replica'], method).toBe('replica-1')
    }
    const reset = await app.inject('/reset/no-such-token')
    expect(reset.statusCode).toBe(404)
    expect(reset.headers['quiesce-replica']).toBeUndefined()
  })

  it('the retry after a conflict reads from the primary', async () => {
    await standby.setApplyDelay(500)
    await putDoc('bumped', 'Bumped')
    await standby.caughtUp()
    await until('the replica to have it', () => database.replicas!.choose(0n) !== undefined)
    await putDoc('bumped', 'Bumped again', {}, 1)
    attempts.length = 0
    // A visitor without a position: the first attempt reads version 1 on the lagging replica, and
    // its commit, checked on the primary (at version 2), conflicts.
    const response = await app.inject('/test/read-and-bump/bumped')
    expect(response.statusCode, response.body).toBe(200)
    expect(attempts).toEqual([{ attempt: 1, version: 1, fromReplica: true }, { attempt: 2, version: 2, fromReplica: false }])
    expect(response.json()).toEqual({ read: 2 })
    expect(response.headers['quiesce-replica']).toBeUndefined()
    expect(response.headers['quiesce-read-after']).toBeDefined()
    expect((await database.writer.selectFrom('document').select('version').where('slug', '=', 'bumped').executeTakeFirstOrThrow()).version).toBe(3)
  })

  it('with two replicas, a person reads only from one that has replayed their write, not from any once one has', async () => {
    // GitLab's trap: un-sticking a person from the primary as soon as one replica had caught up
    // sent their next reads to another one that had not.
    await standby.setApplyDelay(0)
    const slow = await primary.createStandby({ recovery_min_apply_delay: '1000ms' })
    const twoReplicas = await openDatabase(config.database, { replicas: { urls: [standby.url('quiesce'), slow.url('quiesce')], maxLagMs: 2000 } })
    const site = await buildApp({ config: { ...config, instanceId: 'replica-reads-2' }, database: twoReplicas })
    try {
      await site.ready()
      await until('both replicas to be used', () => twoReplicas.replicas!.status().every((replica) => replica.usable), 20_000)
      const servedBy = new Map<string, number>()
      for (let i = 0; i < 8; i++) {
        const put = await site.inject({ method: 'PUT', url: '/api/docs/two-replicas', headers: { authorization: BOB }, payload: { title: `Two ${i}`, body: 'x' } })
        expect(put.statusCode).toBeLessThan(300)
        const readAfter = put.headers['quiesce-read-after'] as string
        for (let read = 0; read < 6; read++) {
          await sleep(50)
          const own = await site.inject({ url: '/api/docs/two-replicas', headers: { 'quiesce-read-after': readAfter } })
          expect(own.json().title, `write ${i}, read ${read}`).toBe(`Two ${i}`)
          const name = own.headers['quiesce-replica'] as string | undefined ?? 'primary'
          servedBy.set(name, (servedBy.get(name) ?? 0) + 1)
        }
      }
      // The replica without the apply delay had each write within a poll or two and served them;
      // the one a second behind never served a read that had to see a write of the last second.
      expect(servedBy.get('replica-1')).toBeGreaterThanOrEqual(24)
      expect(servedBy.get('replica-2')).toBeUndefined()
      const visitors = await Promise.all(Array.from({ length: 8 }, () => site.inject('/api/docs/two-replicas')))
      expect(new Set(visitors.map((visitor) => visitor.headers['quiesce-replica']))).toEqual(new Set(['replica-1', 'replica-2']))
    } finally {
      await site.close()
      await slow.destroy()
    }
  }, 40_000)

  it('a replica stopped under load costs no failed request, and is used again once it is back', async () => {
    await standby.setApplyDelay(0)
    await putDoc('under-load', 'Under load')
    await standby.caughtUp()
    await replicaUsable()
    const answers: Array<{ phase: string, status: number, replica: string | undefined }> = []
    let phase = 'before'
    const load = { running: true }
    const readers = Array.from({ length: 6 }, async (_, reader) => {
      while (load.running) {
        const response = await app.inject(reader % 2 === 0 ? '/api/docs/under-load' : '/docs/under-load')
        answers.push({ phase, status: response.statusCode, replica: response.headers['quiesce-replica'] as string | undefined })
      }
    })
    await sleep(300)
    // A read in flight on the replica when it stops runs again on the primary.
    attempts.length = 0
    const slow = app.inject('/test/slow-read')
    await until('the slow read to start', () => attempts.length > 0)
    phase = 'stopped'
    await standby.stop()
    const slowAnswer = await slow
    expect(slowAnswer.statusCode, slowAnswer.body).toBe(200)
    expect(slowAnswer.headers['quiesce-replica']).toBeUndefined()
    expect(attempts).toEqual([{ attempt: 1, version: 0, fromReplica: true }, { attempt: 1, version: 0, fromReplica: false }])
    await sleep(500)
    expect(database.replicas!.status()[0]).toMatchObject({ usable: false, problem: expect.stringMatching(/^unreachable/) })
    phase = 'down'
    await sleep(500)
    phase = 'starting'
    await standby.start()
    phase = 'back'
    await until('the replica to serve again', () => answers.some((answer) => answer.phase === 'back' && answer.replica === 'replica-1'), 20_000)
    load.running = false
    await Promise.all(readers)

    expect(answers.filter((answer) => answer.status !== 200)).toEqual([])
    const served = (when: string) => answers.filter((answer) => answer.phase === when && answer.replica === 'replica-1').length
    expect(served('before')).toBeGreaterThan(0)
    expect(served('down')).toBe(0)
    expect(answers.filter((answer) => answer.phase === 'down').length).toBeGreaterThan(0)
  }, 40_000)

  it('a replica lagging more than QUIESCE_REPLICA_MAX_LAG_MS is left out until it catches up', async () => {
    await standby.setApplyDelay(3000)
    await putDoc('far-behind', 'Far behind')
    await until('the replica to be left out', () => /^lagging/.test(database.replicas!.status()[0]!.problem ?? ''), 10_000)
    const read = await app.inject('/api/docs/far-behind')
    expect(read.statusCode).toBe(200)
    expect(read.headers['quiesce-replica']).toBeUndefined()
    // The control panel and /api/instances say so: the replica, its lag, not read from.
    const described = async () => (await app.maintenance.instances()).find((row) => row.id === 'replica-reads')!.details!.database as Record<string, unknown>
    const behind = await described()
    expect(behind).toMatchObject({ kind: 'postgres', role: 'primary', replicas: [{ name: 'replica-1', usedForReads: false, problem: expect.stringMatching(/^lagging/) }] })
    expect((behind.replicas as Array<{ lagMs: number, lagBytes: number }>)[0]!.lagMs).toBeGreaterThan(2000)
    expect((behind.replicas as Array<{ lagMs: number, lagBytes: number }>)[0]!.lagBytes).toBeGreaterThan(0)
    expect(behind.label).toMatch(/^PostgreSQL primary; replica-1 not read from: lagging \d+ ms behind the primary/)
    await standby.setApplyDelay(0)
    await replicaUsable()
    const again = await app.inject('/api/docs/far-behind')
    expect(again.statusCode).toBe(200)
    expect(again.headers['quiesce-replica']).toBe('replica-1')
    const caughtUp = await described()
    expect(caughtUp).toMatchObject({ replicas: [{ name: 'replica-1', usedForReads: true, problem: null }] })
    expect((caughtUp.replicas as Array<{ lagMs: number }>)[0]!.lagMs).toBeLessThan(2000)
    expect(caughtUp.label).toMatch(/^PostgreSQL primary; reads on replica-1 \(\d+ ms, \d+ bytes behind\)$/)
  }, 30_000)

  // Last: the standby is a primary of its own afterwards.
  it('a promoted replica no longer follows the primary and is never read from again', async () => {
    await standby.promote()
    await until('the replica to be left out', () => /^not a standby/.test(database.replicas!.status()[0]!.problem ?? ''), 10_000)
    await putDoc('after-promotion', 'After promotion')
    const read = await app.inject('/api/docs/after-promotion')
    expect(read.statusCode).toBe(200)
    expect(read.headers['quiesce-replica']).toBeUndefined()
  })
})
