import http from 'node:http'
import type { Database } from '../../app/db/database.js'
import { codeOf, httpRequest } from './http.js'

/** What became of one `PUT /api/docs/:slug`, as its client saw it. */
export interface WriteAttempt {
  writer: number
  slug: string
  /** A word of its own in the title and the body: search finds the document by it while it is the stored text. */
  token: string
  startedAt: number
  ms: number
  /**
   * `acked`: 2xx, it must be there. `refused`: an answer that says nothing was saved (409, 503),
   * it must not. `unknown`: no answer (the server died, the connection was cut) or a 503 that
   * says the outcome is not known; either is allowed.
   */
  outcome: 'acked' | 'refused' | 'unknown'
  status: number | null
  code: string | null
  version: number | null
  error: string | null
}

export interface WriteLoadOptions {
  /** Base URLs to send to, read before each request (they change when a server restarts); a writer moves to the next one after a network error. */
  targets: () => string[]
  /** The `authorization` header of each writer (HTTP Basic). */
  authorization: (writer: number) => string
  writers: number
  /** Documents per writer; writer w owns `${prefix}-w${w}-${i}`, written by nobody else. */
  docsPerWriter: number
  prefix: string
  /** The client's own limit: a request without an answer after this long fails the test. */
  timeoutMs?: number
  /** Pause between two writes of one writer (ms). */
  pauseMs?: number
}

/**
 * Writers that PUT documents over real HTTP until stopped and remember every attempt, so that
 * the database can be checked against what each client was told: every acknowledged write is
 * there, no refused write is, and each document holds the last acknowledged write or a later
 * one whose outcome its client could not know.
 */
export class WriteLoad {
  readonly attempts: WriteAttempt[] = []
  readonly #options: WriteLoadOptions
  readonly #agent = new http.Agent({ keepAlive: true })
  #stopped = false
  #running: Promise<void> | undefined

  constructor (options: WriteLoadOptions) {
    this.#options = options
  }

  start (): void {
    this.#running = Promise.all(Array.from({ length: this.#options.writers }, (_, w) => this.#writer(w))).then(() => {})
  }

  /** Stops after the writes in flight have their answer (or fail). */
  async stop (): Promise<void> {
    this.#stopped = true
    await this.#running
    this.#agent.destroy()
  }

  /** Waits until `n` more writes have been acknowledged. */
  async acknowledged (n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.attempts.filter((a) => a.outcome === 'acked').length + n
    const started = Date.now()
    while (this.attempts.filter((a) => a.outcome === 'acked').length < target) {
      if (Date.now() - started > timeoutMs) throw new Error(`fewer than ${n} writes were acknowledged within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  slugs (): string[] {
    const slugs: string[] = []
    for (let w = 0; w < this.#options.writers; w++) for (let i = 0; i < this.#options.docsPerWriter; i++) slugs.push(this.#slug(w, i))
    return slugs
  }

  #slug (writer: number, i: number): string {
    return `${this.#options.prefix}-w${writer}-${i}`
  }

  async #writer (writer: number): Promise<void> {
    let target = writer
    for (let seq = 0; !this.#stopped; seq++) {
      const targets = this.#options.targets()
      if (targets.length === 0) {
        // Every server is down: wait for one, as a load balancer's clients would retry.
        await new Promise((resolve) => setTimeout(resolve, 50))
        seq--
        continue
      }
      const base = targets[target % targets.length]!
      const slug = this.#slug(writer, seq % this.#options.docsPerWriter)
      // Fixed width, so no token is a prefix of another (search matches the last word as a prefix).
      const token = `${this.#options.prefix}${String(writer).padStart(3, '0')}x${String(seq).padStart(6, '0')}`
      const startedAt = Date.now()
      const attempt: WriteAttempt = { writer, slug, token, startedAt, ms: 0, outcome: 'unknown', status: null, code: null, version: null, error: null }
      try {
        const answer = await httpRequest(`${base}/api/docs/${slug}`, {
          method: 'PUT',
          headers: { authorization: this.#options.authorization(writer), accept: 'application/json' },
          body: { title: `Document ${slug} ${token}`, body: `Written as ${token} by writer ${writer}.` },
          timeoutMs: this.#options.timeoutMs ?? 30_000,
          agent: this.#agent,
        })
        attempt.status = answer.status
        attempt.code = codeOf(answer) ?? null
        if (answer.status === 200 || answer.status === 201) {
          attempt.outcome = 'acked'
          attempt.version = (JSON.parse(answer.body) as { version: number }).version
        } else if (answer.status === 503 && /may or may not have been saved/.test(answer.body)) {
          attempt.outcome = 'unknown'
        } else {
          attempt.outcome = 'refused'
        }
      } catch (err) {
        attempt.error = (err as Error).message
        // That server is gone for now: the next write goes to another one, as a load balancer would send it.
        target++
      }
      attempt.ms = Date.now() - startedAt
      this.attempts.push(attempt)
      if (this.#options.pauseMs !== undefined) await new Promise((resolve) => setTimeout(resolve, this.#options.pauseMs))
      else if (attempt.error !== null) await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

export interface WriteCheck {
  attempts: number
  acked: number
  refused: number
  unknown: number
  /** Acknowledged writes whose document is missing or older than the version they were answered with. */
  lost: WriteAttempt[]
  /** Refused writes whose text is what the document holds. */
  refusedPresent: WriteAttempt[]
  /** Documents whose text is neither the last acknowledged write nor a later write of unknown outcome. */
  wrongFinal: string[]
  /** Answers with a status the site must never give: 5xx other than 503, or a 503 without a code. */
  bad: WriteAttempt[]
  /** The token each document holds now (what search must find it by). */
  current: Map<string, string>
  /** Tokens of acknowledged writes that a later acknowledged write replaced (search must not find them). */
  superseded: string[]
}

/** Checks the database against every answer the writers got. */
export async function checkWrites (database: Database, attempts: readonly WriteAttempt[]): Promise<WriteCheck> {
  const bySlug = new Map<string, WriteAttempt[]>()
  for (const attempt of [...attempts].sort((a, b) => a.startedAt - b.startedAt)) {
    const list = bySlug.get(attempt.slug) ?? []
    list.push(attempt)
    bySlug.set(attempt.slug, list)
  }
  const slugs = [...bySlug.keys()]
  const rows = slugs.length === 0
    ? []
    : await database.writer.selectFrom('document').select(['slug', 'title', 'version']).where('slug', 'in', slugs).execute()
  const stored = new Map(rows.map((row) => [row.slug, row]))
  const check: WriteCheck = {
    attempts: attempts.length,
    acked: 0,
    refused: 0,
    unknown: 0,
    lost: [],
    refusedPresent: [],
    wrongFinal: [],
    bad: attempts.filter((a) => a.status !== null && a.status >= 500 && (a.status !== 503 || a.code === null)),
    current: new Map(),
    superseded: [],
  }
  for (const [slug, list] of bySlug) {
    const row = stored.get(slug)
    const token = row === undefined ? undefined : row.title.split(' ').at(-1)
    if (token !== undefined) check.current.set(slug, token)
    let lastAck = -1
    list.forEach((attempt, i) => {
      if (attempt.outcome === 'acked') {
        check.acked++
        if (lastAck >= 0) check.superseded.push(list[lastAck]!.token)
        lastAck = i
        if (row === undefined || row.version < attempt.version!) check.lost.push(attempt)
      } else if (attempt.outcome === 'refused') {
        check.refused++
        if (attempt.token === token) check.refusedPresent.push(attempt)
      } else {
        check.unknown++
      }
    })
    const allowed = new Set(list.filter((a, i) => (i === lastAck) || (i > lastAck && a.outcome === 'unknown')).map((a) => a.token))
    if (token === undefined ? lastAck >= 0 : !allowed.has(token)) check.wrongFinal.push(slug)
  }
  // A superseded token that is still current means a lost write, reported as such above.
  const currentTokens = new Set(check.current.values())
  check.superseded = check.superseded.filter((t) => !currentTokens.has(t))
  return check
}
