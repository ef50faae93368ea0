import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { openDatabase } from '../app/db/database.js'
import { addUser, basicAuth, startTestSite, testConfig, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, basicOf } from './helpers/principals.js'
import { until } from './helpers/wait.js'

const BOSS = basicOf('maintainer')

async function switchMode (app: FastifyInstance, mode: string): Promise<LightMyRequestResponse> {
  const current = (await app.inject({ url: '/api/maintenance' })).json()
  return app.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization: BOSS }, payload: { mode, reason: 'cluster test', expectedVersion: current.version } })
}

describe.each(DATABASE_KINDS)('two instances on one %s database', (kind) => {
  let a: TestSite
  let b: FastifyInstance

  beforeAll(async () => {
    a = await startTestSite(kind, { config: { instanceId: 'instance-a' } })
    const config = testConfig(a.testDatabase, { instanceId: 'instance-b' })
    b = await buildApp({ config, database: await openDatabase(config.database) })
    await b.listen({ port: 0, host: '127.0.0.1' })
    await addPrincipals(a, ['maintainer'])
    for (let i = 0; i < 12; i++) {
      await a.app.inject({ method: 'PUT', url: `/api/docs/cluster-${i}`, headers: { authorization: BOSS }, payload: { title: `cluster ${i}`, body: 'v0' } })
    }
  })
  afterAll(async () => {
    await b.close()
    await a.close()
  })

  it('a change acknowledged on one instance is enforced by the other without a restart', async () => {
    const res = await switchMode(a.app, 'exclusive')
    expect(res.statusCode).toBe(200)
    const version = res.json().version
    await until('instance b to apply the change', () => b.maintenance.state.version === version)
    const visitor = await b.inject('/docs/cluster-1')
    expect(visitor.statusCode).toBe(503)
    expect(visitor.headers['quiesce-mode']).toBe('exclusive')

    expect((await switchMode(a.app, 'normal')).statusCode).toBe(200)
    await until('instance b to open again', () => b.maintenance.state.mode === 'normal')
    expect((await b.inject('/docs/cluster-1')).statusCode).toBe(200)
  })

  it('both instances are registered, with the state version each has applied', async () => {
    const version = a.app.maintenance.state.version
    const instances = await until('both instances to report the current version', async () => {
      const res = await a.app.inject({ url: '/api/instances', headers: { authorization: BOSS } })
      const list = res.json().instances as Array<{ id: string, stateVersion: number, applied: boolean, stale: boolean, address: string | null }>
      return list.length === 2 && list.every((i) => i.stateVersion === version) ? list : undefined
    })
    expect(instances.map((i) => i.id)).toEqual(['instance-a', 'instance-b'])
    expect(instances.every((i) => i.applied && !i.stale)).toBe(true)
    expect(instances[1]!.address).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it('an instance that stops heartbeating shows as stale, then drops out', async () => {
    const old = (ms: number) => new Date(Date.now() - ms).toISOString()
    const row = (id: string, heartbeatAt: string) => ({ id, address: null, started_at: old(3_600_000), heartbeat_at: heartbeatAt, state_version: 1, requests_in_flight: 0, writes_in_flight: 0 })
    await a.database.writer.insertInto('maintenance_instance').values([row('gone-quiet', old(10_000)), row('long-gone', old(120_000))]).execute()
    const listed = await until('the next heartbeat to drop the long-gone instance', async () => {
      const list = (await a.app.inject({ url: '/api/instances', headers: { authorization: BOSS } })).json().instances as Array<{ id: string, stale: boolean, applied: boolean }>
      return list.some((i) => i.id === 'long-gone') ? undefined : list
    })
    expect(listed.find((i) => i.id === 'gone-quiet')).toMatchObject({ stale: true, applied: false })
    await a.database.writer.deleteFrom('maintenance_instance').where('id', '=', 'gone-quiet').execute()
  })

  /**
   * The acceptance test of the maintenance issue: writers on both instances run across a switch
   * to concurrent. No write by a non-maintainer commits after the switch is acknowledged, and
   * every acknowledged write is in the database.
   */
  it('no write commits after the switch is acknowledged, and no acknowledged write is lost', async () => {
    for (const name of ['w0', 'w1', 'w2', 'w3']) await addUser(a.database, name, 'member')
    const writers = ['w0', 'w1', 'w2', 'w3']
    const outcomes: Array<{ writer: string, slug: string, seq: number, status: number, code?: string, startedAfterAck: boolean }> = []
    let acknowledged = false

    const writer = async (name: string, index: number) => {
      const app = index % 2 === 0 ? a.app : b
      const slug = `cluster-${index}`
      // Each writer keeps going until five of its requests started after the acknowledgement.
      for (let seq = 1; ; seq++) {
        const startedAfterAck = acknowledged
        const res = await app.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: basicAuth(name, `${name}-password`) }, payload: { title: `cluster ${index}`, body: `${name} write ${seq}` } })
        outcomes.push({ writer: name, slug, seq, status: res.statusCode, code: res.statusCode >= 400 ? res.json().code : undefined, startedAfterAck })
        if (startedAfterAck && outcomes.filter((o) => o.writer === name && o.startedAfterAck).length >= 5) return
      }
    }

    const running = writers.map((name, index) => writer(name, index))
    await until('every writer to land a few writes', () => writers.every((name) => outcomes.filter((o) => o.writer === name && o.status === 200).length >= 3))
    const res = await switchMode(a.app, 'concurrent')
    expect(res.statusCode).toBe(200)
    // The database right after the acknowledgement: nothing may change from here on.
    const atAck = await a.database.writer.selectFrom('document').select(['slug', 'version', 'body']).where('slug', 'like', 'cluster-%').orderBy('slug').execute()
    acknowledged = true
    await Promise.all(running)
    const final = await a.database.writer.selectFrom('document').select(['slug', 'version', 'body']).where('slug', 'like', 'cluster-%').orderBy('slug').execute()
    expect(final).toEqual(atAck)

    // Every request that started after the acknowledgement was refused at commit.
    const after = outcomes.filter((o) => o.startedAfterAck)
    expect(after.length).toBeGreaterThanOrEqual(20)
    expect(after.every((o) => o.status === 503 && o.code === 'QUIESCE_READ_ONLY')).toBe(true)
    // Only 200s and read-only refusals happened at all (no 500s, no lost conflicts).
    expect(outcomes.every((o) => o.status === 200 || (o.status === 503 && o.code === 'QUIESCE_READ_ONLY'))).toBe(true)
    // Every acknowledged write is in the database: one version per 200, and the last 200's body.
    for (const [index, name] of writers.entries()) {
      const slug = `cluster-${index}`
      const mine = outcomes.filter((o) => o.writer === name)
      const succeeded = mine.filter((o) => o.status === 200)
      const row = final.find((r) => r.slug === slug)!
      expect(row.version).toBe(1 + succeeded.length)
      expect(row.body).toBe(`${name} write ${succeeded.at(-1)!.seq}`)
    }

    expect((await switchMode(a.app, 'normal')).statusCode).toBe(200)
  })
})

describe.each(DATABASE_KINDS)('an instance starting on %s', (kind) => {
  it('loads the shared state before it accepts a request', async () => {
    const site = await startTestSite(kind)
    try {
      // Another instance switched the site before this one starts.
      await site.database.writer.updateTable('maintenance_state').set({ mode: 'exclusive', maintainer: 'someone', version: 7, reason: 'before start' }).where('id', '=', 1).execute()
      const config = testConfig(site.testDatabase, { instanceId: 'late-starter' })
      const late = await buildApp({ config, database: await openDatabase(config.database) })
      try {
        await late.ready()
        const first = await late.inject('/')
        expect(first.statusCode).toBe(503)
        expect(first.headers['quiesce-mode']).toBe('exclusive')
      } finally {
        await late.close()
      }
    } finally {
      await site.close()
    }
  })
})
