import type { MaintenanceState } from './state.js'
import type { MaintenanceStore } from './store.js'

/**
 * This instance's copy of the shared state: what the gate judges by (no query on the hot path)
 * and what it reports. Commits and retries read the database itself and teach the copy.
 */
export class StateCache {
  #state: MaintenanceState
  #confirmedAt: number
  /** When the newest completed read of the state began (performance.now()). */
  #readBegunAt = Number.NEGATIVE_INFINITY
  /** The read in flight, if any, and when it began. */
  #reading: { begunAt: number, state: Promise<MaintenanceState> } | undefined
  readonly #store: MaintenanceStore
  readonly #listeners = new Set<(state: MaintenanceState) => void>()

  /** Read before the instance accepts requests: if the database cannot be read, the start fails. */
  static async load (store: MaintenanceStore): Promise<StateCache> {
    return new StateCache(store, await store.read())
  }

  private constructor (store: MaintenanceStore, initial: MaintenanceState) {
    this.#store = store
    this.#state = initial
    this.#confirmedAt = Date.now()
  }

  get state (): MaintenanceState {
    return this.#state
  }

  /** When the state was last read from the database (ms since the epoch). */
  get confirmedAt (): number {
    return this.#confirmedAt
  }

  /** Takes a state read from the database: a newer version replaces the copy and is announced. */
  apply (next: MaintenanceState): void {
    this.#confirmedAt = Date.now()
    if (next.version <= this.#state.version) return
    this.#state = next
    for (const listener of this.#listeners) listener(next)
  }

  /** Reads the state from the database (not the copy) and applies it. */
  refresh (): Promise<MaintenanceState> {
    const begunAt = performance.now()
    let reading: Promise<MaintenanceState>
    try {
      reading = this.#store.read()
    } catch (err) {
      // A store whose read throws at once fails like one whose read rejects.
      reading = Promise.reject(err)
    }
    const state = reading.then((read) => {
      this.apply(read)
      this.#readBegunAt = Math.max(this.#readBegunAt, begunAt)
      return this.#state
    }).finally(() => {
      if (this.#reading?.state === state) this.#reading = undefined
    })
    this.#reading = { begunAt, state }
    return state
  }

  /**
   * The state as a read of the database that began at `since` or later saw it (or newer): the
   * last read if it began late enough, else the read in flight if it did, else a new one. So
   * that many refusals in a row cost one read, not one each, and none is judged by a read older
   * than its own request. `since`: a performance.now() time.
   */
  readSince (since: number): Promise<MaintenanceState> {
    if (this.#readBegunAt >= since) return Promise.resolve(this.#state)
    if (this.#reading !== undefined && this.#reading.begunAt >= since) return this.#reading.state
    return this.refresh()
  }

  /** Called with each newer state this instance applies; returns the unsubscribe function. */
  subscribe (listener: (state: MaintenanceState) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }
}
