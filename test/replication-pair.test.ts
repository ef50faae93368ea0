import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresServer } from './helpers/postgres-server.js'

/**
 * The replication test helper itself: a throwaway primary and a hot standby built with the
 * machine's binaries, lag injected with `recovery_min_apply_delay`, and promotion. Fails, never
 * skips, when the pair cannot be built.
 */
describe('a throwaway primary and hot standby', () => {
  let primary: PostgresServer
  let standby: PostgresServer

  beforeAll(async () => {
    primary = await PostgresServer.create()
    await primary.query('create table t (id int primary key, v text)')
    standby = await primary.createStandby()
  }, 60_000)

  afterAll(async () => {
    await standby?.destroy()
    await primary?.destroy()
  })

  it('streams what the primary commits and refuses writes itself', async () => {
    expect(await standby.inRecovery()).toBe(true)
    expect(await primary.inRecovery()).toBe(false)
    await primary.query("insert into t values (1, 'one')")
    await standby.caughtUp()
    expect(await standby.query('select v from t where id = 1')).toEqual([{ v: 'one' }])
    await expect(standby.query("insert into t values (2, 'two')")).rejects.toMatchObject({ code: '25006' })
  })

  it('applies commits after recovery_min_apply_delay, exactly as long', async () => {
    await standby.setApplyDelay(500)
    const started = Date.now()
    await primary.query("insert into t values (3, 'three')")
    expect(await standby.query('select v from t where id = 3')).toEqual([])
    await standby.caughtUp()
    const took = Date.now() - started
    expect(took).toBeGreaterThanOrEqual(480)
    expect(took).toBeLessThan(3000)
    expect(await standby.query('select v from t where id = 3')).toEqual([{ v: 'three' }])
    await standby.setApplyDelay(0)
  })

  it('catches up after it was stopped, from its slot', async () => {
    await standby.stop()
    await primary.query("insert into t select g, 'many' from generate_series(10, 1000) g")
    await standby.start()
    await standby.caughtUp()
    expect(await standby.query('select count(*)::int as n from t')).toEqual([{ n: 993 }])
  })

  it('becomes a primary of its own when promoted', async () => {
    await standby.promote()
    expect(await standby.inRecovery()).toBe(false)
    await standby.query("insert into t values (2, 'two')")
    expect(await standby.query('select v from t where id = 2')).toEqual([{ v: 'two' }])
  })
})
