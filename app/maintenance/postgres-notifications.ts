import type { FastifyBaseLogger } from 'fastify'
import pg from 'pg'
import type { ChangeSignal } from './change-signals.js'
import { NOTIFY_CHANNEL } from './store.js'

// A file of its own, not re-exported by index.ts: a host on SQLite never loads `pg`.

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
  return new PostgresListener(options)
}

class PostgresListener implements ChangeSignal {
  readonly #options: PostgresSignalOptions
  readonly #channel: string
  readonly #keepAliveMs: number
  readonly #timeoutMs: number
  #onSignal: () => void = () => {}
  #client: pg.Client | undefined
  #stopped = false
  #keepAlive: NodeJS.Timeout | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  #backoffMs = 250

  constructor (options: PostgresSignalOptions) {
    this.#options = options
    this.#channel = options.channel ?? NOTIFY_CHANNEL
    this.#keepAliveMs = options.keepAliveMs ?? 10_000
    this.#timeoutMs = options.timeoutMs ?? 5000
  }

  async start (onSignal: () => void): Promise<void> {
    this.#onSignal = onSignal
    await this.#connect()
    this.#keepAlive = setInterval(() => {
      this.#onSignal()
      this.#check()
    }, this.#keepAliveMs)
    this.#keepAlive.unref()
  }

  async stop (): Promise<void> {
    this.#stopped = true
    clearInterval(this.#keepAlive)
    clearTimeout(this.#reconnectTimer)
    const current = this.#client
    this.#client = undefined
    if (current !== undefined) await discard(current)
  }

  async #connect (): Promise<void> {
    const next = new pg.Client({ connectionString: this.#options.connectionString, application_name: 'quiesce-listener', connectionTimeoutMillis: this.#timeoutMs, keepAlive: true })
    next.on('notification', (message) => {
      if (message.channel === this.#channel) this.#onSignal()
    })
    next.on('error', (err) => {
      this.#options.log.warn({ err }, 'maintenance listener connection failed; reconnecting')
      this.#scheduleReconnect()
    })
    next.on('end', () => this.#scheduleReconnect())
    this.#client = next
    await next.connect()
    await next.query(`listen ${this.#channel}`)
    this.#backoffMs = 250
    this.#onSignal()
  }

  #scheduleReconnect (): void {
    if (this.#stopped || this.#reconnectTimer !== undefined) return
    const dead = this.#client
    this.#client = undefined
    if (dead !== undefined) discard(dead).catch(() => {})
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      this.#connect().catch((err: unknown) => {
        this.#options.log.warn({ err, retryInMs: this.#backoffMs }, 'maintenance listener could not reconnect')
        this.#backoffMs = Math.min(this.#backoffMs * 2, 5000)
        this.#scheduleReconnect()
      })
    }, this.#backoffMs)
    this.#reconnectTimer.unref()
  }

  #check (): void {
    const current = this.#client
    if (current === undefined || this.#reconnectTimer !== undefined) return
    // node-postgres takes a per-query `query_timeout`; its types do not list it.
    current.query({ text: 'select 1', query_timeout: this.#timeoutMs } as pg.QueryConfig).catch((err: unknown) => {
      if (this.#client !== current) return
      this.#options.log.warn({ err }, 'maintenance listener connection does not answer; reconnecting')
      this.#scheduleReconnect()
    })
  }
}

/** Closes a connection that is no longer used; its late errors are of no interest. */
async function discard (client: pg.Client): Promise<void> {
  client.removeAllListeners()
  client.on('error', () => {})
  await client.end().catch(() => {})
}
