import type { MaintenanceState } from './state.js'
import type { MaintenanceStore } from './store.js'

/**
 * This instance's copy of the shared state: what the gate judges by (no query on the hot path)
 * and what it reports. Commits and retries read the database itself and teach the copy.
 */
export class StateCache {
  #state: MaintenanceState
  #confirmedAt: number
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
  async refresh (): Promise<MaintenanceState> {
    this.apply(await this.#store.read())
    return this.#state
  }

  /** Called with each newer state this instance applies; returns the unsubscribe function. */
  subscribe (listener: (state: MaintenanceState) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }
}
