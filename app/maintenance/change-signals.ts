import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import { NOTIFY_CHANNEL } from './store.js'

/**
 * Tells an instance that the shared state may have changed, so it re-reads it. Signals may be
 * spurious; the re-read decides. Correctness never depends on them: commits re-read the state
 * in their own transaction.
 */
export interface ChangeSignal {
  start (onSignal: () => void): Promise<void>
  stop (): Promise<void>
}

export interface PostgresSignalOptions {
  connectionString: string
  log: FastifyBaseLogger
  /** A re-read this often even without notifications, in case one was missed; the connection is checked as often. */
  keepAliveMs?: number
  /** How long connecting, and each check of the connection, may take before it is replaced (default 5000 ms). */
  timeoutMs?: number
  channel?: string
}

/**
 * PostgreSQL LISTEN/NOTIFY on a dedicated connection, which reconnects with backoff; every
 * (re)connect signals too, since notifications sent while disconnected are lost. A connection
 * that a server cut off without a word (hung, partitioned) would wait for notifications forever,
 * so each keep-alive tick also checks it with a bounded `select 1`.
 */
export function postgresNotifications (options: PostgresSignalOptions): ChangeSignal {
  const channel = options.channel ?? NOTIFY_CHANNEL
  const keepAliveMs = options.keepAliveMs ?? 10_000
  const timeoutMs = options.timeoutMs ?? 5000
  let client: pg.Client | undefined
  let stopped = false
  let keepAlive: NodeJS.Timeout | undefined
  let reconnectTimer: NodeJS.Timeout | undefined
  let backoffMs = 250

  async function connect (onSignal: () => void): Promise<void> {
    const next = new pg.Client({ connectionString: options.connectionString, application_name: 'quiesce-listener', connectionTimeoutMillis: timeoutMs, keepAlive: true })
    next.on('notification', (message) => {
      if (message.channel === channel) onSignal()
    })
    next.on('error', (err) => {
      options.log.warn({ err }, 'maintenance listener connection failed; reconnecting')
      scheduleReconnect(onSignal)
    })
    next.on('end', () => scheduleReconnect(onSignal))
    client = next
    await next.connect()
    await next.query(`listen ${channel}`)
    backoffMs = 250
    onSignal()
  }

  function scheduleReconnect (onSignal: () => void): void {
    if (stopped || reconnectTimer !== undefined) return
    const dead = client
    client = undefined
    dead?.removeAllListeners()
    dead?.on('error', () => {})
    dead?.end().catch(() => {})
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined
      connect(onSignal).catch((err: unknown) => {
        options.log.warn({ err, retryInMs: backoffMs }, 'maintenance listener could not reconnect')
        backoffMs = Math.min(backoffMs * 2, 5000)
        scheduleReconnect(onSignal)
      })
    }, backoffMs)
    reconnectTimer.unref()
  }

  function check (onSignal: () => void): void {
    const current = client
    if (current === undefined || reconnectTimer !== undefined) return
    // node-postgres takes a per-query `query_timeout`; its types do not list it.
    current.query({ text: 'select 1', query_timeout: timeoutMs } as pg.QueryConfig).catch((err: unknown) => {
      if (client !== current) return
      options.log.warn({ err }, 'maintenance listener connection does not answer; reconnecting')
      scheduleReconnect(onSignal)
    })
  }

  return {
    async start (onSignal) {
      await connect(onSignal)
      keepAlive = setInterval(() => {
        onSignal()
        check(onSignal)
      }, keepAliveMs)
      keepAlive.unref()
    },
    async stop () {
      stopped = true
      clearInterval(keepAlive)
      clearTimeout(reconnectTimer)
      const current = client
      client = undefined
      if (current !== undefined) {
        current.removeAllListeners()
        current.on('error', () => {})
        await current.end().catch(() => {})
      }
    },
  }
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
