import { describe, expect, it } from 'vitest'
import type { MaintenanceState } from '../app/maintenance/state.js'
import { StateCache } from '../app/maintenance/state-cache.js'
import type { MaintenanceStore } from '../app/maintenance/store.js'
import { deferred } from './helpers/wait.js'

const CONCURRENT: MaintenanceState = { mode: 'concurrent', maintainer: 'boss', reason: 'reindex', since: '2026-12-06T10:00:00.000Z', until: null, version: 2, changedBy: 'boss', changedAt: '2026-12-06T10:00:00.000Z' }

/** A store whose reads are counted, and answered when the test says so. */
function heldStore () {
  const pending: Array<ReturnType<typeof deferred<MaintenanceState>>> = []
  let reads = 0
  const store = {
    read () {
      reads++
      const read = deferred<MaintenanceState>()
      pending.push(read)
      return read.promise
    },
  } as unknown as MaintenanceStore
  return { store, reads: () => reads, answer: (state: MaintenanceState) => pending.shift()!.resolve(state) }
}

/**
 * The early refusal's confirming read (issue 10 item 3): refusals in a row share one read, but
 * never one that began before their own unit of work did.
 */
describe('StateCache.readSince', () => {
  it('shares the read in flight among those who began before it, and reuses a finished one', async () => {
    const { store, reads, answer } = heldStore()
    const loading = StateCache.load(store)
    answer({ ...CONCURRENT, mode: 'normal', maintainer: null, version: 1 })
    const cache = await loading
    expect(reads()).toBe(1)

    const begun = performance.now()
    const first = cache.readSince(begun)
    const second = cache.readSince(begun)
    expect(reads()).toBe(2)
    answer(CONCURRENT)
    expect(await first).toMatchObject({ mode: 'concurrent', version: 2 })
    expect(await second).toMatchObject({ mode: 'concurrent', version: 2 })
    // That read began after `begun`: it still answers for it, without another read.
    expect(await cache.readSince(begun)).toMatchObject({ version: 2 })
    expect(reads()).toBe(2)
  })

  it('fails a refresh whose store throws at once as one that rejects: a rejected promise, not a throw', async () => {
    let fail = false
    const store = { read: () => { if (fail) throw new Error('no connection'); return Promise.resolve(CONCURRENT) } } as unknown as MaintenanceStore
    const cache = await StateCache.load(store)
    fail = true
    const refreshed = cache.refresh()
    await expect(refreshed).rejects.toThrow('no connection')
  })

  it('reads again for a unit of work that began after the last read and the one in flight began', async () => {
    const { store, reads, answer } = heldStore()
    const loading = StateCache.load(store)
    answer(CONCURRENT)
    const cache = await loading
    const early = cache.readSince(performance.now())
    expect(reads()).toBe(2)
    await new Promise((resolve) => setTimeout(resolve, 5))
    const late = cache.readSince(performance.now())
    expect(reads()).toBe(3)
    answer(CONCURRENT)
    answer({ ...CONCURRENT, mode: 'normal', maintainer: null, version: 3 })
    expect(await early).toMatchObject({ version: 2 })
    expect(await late).toMatchObject({ mode: 'normal', version: 3 })
    // A unit of work that begins after every read so far gets a read of its own.
    const now = performance.now()
    expect(reads()).toBe(3)
    cache.readSince(now).catch(() => {})
    expect(reads()).toBe(4)
  })
})
