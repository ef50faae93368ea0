/**
 * Tells an instance that the shared state may have changed, so it re-reads it. Signals may be
 * spurious; the re-read decides. Correctness never depends on them: commits re-read the state
 * in their own transaction.
 */
export interface ChangeSignal {
  start (onSignal: () => void): Promise<void>
  stop (): Promise<void>
}

export interface PollingSignalOptions {
  /** A cheap counter that moves when anything else commits (SQLite: `PRAGMA data_version`). */
  check: () => number
  intervalMs?: number
  keepAliveMs?: number
}

/** Polls a change counter; for SQLite files shared by several processes. */
export function pollingSignal (options: PollingSignalOptions): ChangeSignal {
  let poll: NodeJS.Timeout | undefined
  let keepAlive: NodeJS.Timeout | undefined
  return {
    async start (onSignal) {
      let last = options.check()
      poll = setInterval(() => {
        let current: number
        try {
          current = options.check()
        } catch {
          // The database is closing or unreachable; the keep-alive re-read reports it.
          return
        }
        if (current !== last) {
          last = current
          onSignal()
        }
      }, options.intervalMs ?? 50)
      poll.unref()
      keepAlive = setInterval(onSignal, options.keepAliveMs ?? 10_000)
      keepAlive.unref()
    },
    async stop () {
      clearInterval(poll)
      clearInterval(keepAlive)
    },
  }
}
