/**
 * The chaos workload (issue 7, item 1): writers and a manager over real HTTP against a cluster
 * of `quiesce serve` processes, every request and answer recorded, and the database read
 * afterwards for test/helpers/chaos-check.ts.
 */
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'kysely'
import type { Database } from '../../app/db/database.js'
import type { ChaosSnapshot, CommitRow, DocumentRow, Mode, Op, OpKind } from './chaos-check.js'
import { tokenIn } from './chaos-check.js'
import { basicAuth, errorCode, request, signInOverHttp, type Answer, type HttpSession, type RequestOptions } from './http-client.js'

export interface ChaosInstance { id: string, url: string }

export interface Person { name: string, password: string }

export interface ChaosCast {
  /** The manager who switches most and writes as the maintainer. */
  boss: Person
  /** Another manager: refused while boss is maintainer, maintainer when it switches first. */
  deputy: Person
  /** The emergency user. */
  root: Person
  members: Person[]
}

export interface ChaosOptions {
  instances: ChaosInstance[]
  cast: ChaosCast
  /** Applied mode changes to make (the run then returns the site to normal). */
  switches: number
  /** Members who use a signed-in session and the HTML forms; the others use Basic and the API. */
  formMembers: number
  /** Documents every writer updates. */
  sharedSlugs: string[]
  /** A prefix that makes this run's tokens unique on the database. */
  runId: string
  /** Pause between two change attempts, ms (uniform). */
  pauseMs: [number, number]
  /** Pause between two requests of one writer, ms (uniform). */
  thinkMs: [number, number]
  /** Reads commit_log during the run (it is pruned to its newest 10,000 rows). */
  database: Database
  /** The manager stops making changes after this long (the check then finds fewer than asked for). */
  deadlineMs: number
}

export interface ChaosRun {
  ops: Op[]
  commits: CommitRow[]
  durationMs: number
}

const random = (min: number, max: number) => min + Math.random() * (max - min)
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!

/** Each writer's own document. */
export function ownSlug (name: string): string {
  return `own-${name}`
}

interface Writer {
  person: Person
  agent: http.Agent
  session?: HttpSession
  basic?: string
  /** Documents it created (version 1, never updated) and has not deleted yet. */
  created: string[]
  seq: number
}

export async function runChaos (options: ChaosOptions): Promise<ChaosRun> {
  const { instances, cast } = options
  const ops: Op[] = []
  const t0 = performance.now()
  let n = 0
  /** Read by the loops, set when the manager is done. */
  const control = { stopping: false, polling: true }
  /** The newest version of each shared document that an answer named. */
  const lastSeen = new Map<string, number>()

  /**
   * Read-your-writes with replica reads: each person carries the read-after position of their
   * last write as the site documents it, a browser (form writers) in the `quiesce.read-after`
   * cookie, an API client (Basic writers) by echoing the `Quiesce-Read-After` header.
   */
  const readAfter = new Map<string, { cookie?: string, header?: string }>()
  function carrying (who: string, options: RequestOptions): RequestOptions {
    const carried = readAfter.get(who)
    if (carried === undefined) return options
    const headers: Record<string, string> = { ...options.headers }
    if (carried.header !== undefined) headers['quiesce-read-after'] = carried.header
    if (carried.cookie !== undefined) headers.cookie = headers.cookie === undefined ? carried.cookie : `${headers.cookie}; ${carried.cookie}`
    return { ...options, headers }
  }
  function keepReadAfter (who: string, options: RequestOptions, answer: Answer): void {
    const token = answer.headers['quiesce-read-after']
    if (typeof token !== 'string') return
    const browser = options.headers?.cookie !== undefined
    const cookie = (answer.headers['set-cookie'] ?? []).find((line) => line.startsWith('quiesce.read-after='))?.split(';')[0]
    readAfter.set(who, browser ? { cookie } : { header: token })
  }

  async function send (kind: OpKind, who: string, instance: ChaosInstance, agent: http.Agent, method: string, path: string, fields: Partial<Op>, options: RequestOptions): Promise<{ op: Op, answer: Answer }> {
    const answer = await request(agent, instance.url + path, { method, ...carrying(who, options) })
    keepReadAfter(who, options, answer)
    const replica = answer.headers['quiesce-replica']
    const op: Op = {
      n: ++n,
      kind,
      who,
      instance: instance.id,
      method,
      path,
      via: 'api',
      ...fields,
      start: answer.start - t0,
      end: answer.end - t0,
      status: answer.status,
      code: errorCode(answer),
      ...(typeof replica === 'string' ? { replica } : {}),
      ...(answer.error === undefined ? {} : { error: answer.error }),
    }
    ops.push(op)
    return { op, answer }
  }

  function versionOf (answer: Answer): number | undefined {
    if (answer.status !== 200 && answer.status !== 201) return undefined
    try {
      return (JSON.parse(answer.body) as { version?: number }).version
    } catch {
      return undefined
    }
  }

  // --- Writers --------------------------------------------------------------------------------
  // Each person connects from an address of their own (127.0.0.0/8 is all loopback), as people
  // do: the sign-in limits are per client address.
  const writers: Writer[] = [cast.boss, cast.root, ...cast.members].map((person, i) => ({
    person,
    agent: new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.0.${10 + i}` }),
    created: [],
    seq: 0,
  }))
  const formWriters = new Set(cast.members.slice(0, options.formMembers).map((member) => member.name))
  for (const writer of writers) {
    if (formWriters.has(writer.person.name)) writer.session = await signInOverHttp(writer.agent, pick(instances).url, writer.person.name, writer.person.password)
    else writer.basic = basicAuth(writer.person.name, writer.person.password)
  }
  // Each writer's own document, as it is now (one writer: its version is known from the answers).
  const ownVersion = new Map<string, number>()
  for (const row of await options.database.writer.selectFrom('document').select(['slug', 'version']).execute()) ownVersion.set(row.slug, row.version)
  for (const slug of options.sharedSlugs) lastSeen.set(slug, ownVersion.get(slug) ?? 1)

  async function apiWrite (writer: Writer): Promise<void> {
    const name = writer.person.name
    const token = `${options.runId}-${name}-${++writer.seq}`
    const headers = { authorization: writer.basic!, accept: 'application/json' }
    const instance = pick(instances)
    const r = Math.random()
    if (r < 0.08 && writer.created.length > 0) {
      const slug = writer.created[0]!
      const { op } = await send('delete', name, instance, writer.agent, 'DELETE', `/api/docs/${slug}?expectedVersion=1`, { slug, token }, { headers })
      if (op.status === 204) writer.created.shift()
    } else if (r < 0.28) {
      const slug = `c-${token}`
      const { op } = await send('create', name, instance, writer.agent, 'PUT', `/api/docs/${slug}`, { slug, token }, { headers, body: { title: `Chaos ${token}`, body: `chaos-token:${token}` } })
      if (op.status === 201) writer.created.push(slug)
    } else if (r < 0.55) {
      const slug = ownSlug(name)
      const { op, answer } = await send('update', name, instance, writer.agent, 'PUT', `/api/docs/${slug}`, { slug, token }, { headers, body: { title: `Own ${token}`, body: `chaos-token:${token}` } })
      op.version = versionOf(answer)
    } else if (r < 0.88) {
      const slug = pick(options.sharedSlugs)
      const expectedVersion = r < 0.78 ? undefined : lastSeen.get(slug)
      const { op, answer } = await send('update', name, instance, writer.agent, 'PUT', `/api/docs/${slug}`, { slug, token, expectedVersion }, {
        headers,
        body: { title: `Shared ${token}`, body: `chaos-token:${token}`, ...(expectedVersion === undefined ? {} : { expectedVersion }) },
      })
      op.version = versionOf(answer)
      if (op.version !== undefined) lastSeen.set(slug, Math.max(lastSeen.get(slug) ?? 0, op.version))
    } else {
      await readOwn(writer, instance, headers)
    }
  }

  async function readOwn (writer: Writer, instance: ChaosInstance, headers: Record<string, string>): Promise<void> {
    const slug = ownSlug(writer.person.name)
    const { op, answer } = await send('read', writer.person.name, instance, writer.agent, 'GET', `/api/docs/${slug}`, { slug }, { headers })
    if (answer.status === 200) {
      const doc = JSON.parse(answer.body) as { version: number, body: string }
      op.version = doc.version
      op.readToken = tokenIn(doc.body)
    }
  }

  async function formWrite (writer: Writer): Promise<void> {
    const name = writer.person.name
    const session = writer.session!
    const token = `${options.runId}-${name}-${++writer.seq}`
    const headers = { cookie: session.cookie, accept: 'text/html' }
    const instance = pick(instances)
    const form = (fields: Record<string, string>) => new URLSearchParams({ _csrf: session.csrf, ...fields })
    const r = Math.random()
    let sent: { op: Op }
    if (r < 0.12 && writer.created.length > 0) {
      const slug = writer.created[0]!
      sent = await send('delete', name, instance, writer.agent, 'POST', `/docs/${slug}/delete`, { slug, token, via: 'form' }, { headers, body: form({ version: '1' }) })
      if (sent.op.status === 303) writer.created.shift()
    } else if (r < 0.37) {
      const slug = `c-${token}`
      sent = await send('create', name, instance, writer.agent, 'POST', '/docs', { slug, token, via: 'form' }, { headers, body: form({ slug, title: `Chaos ${token}`, body: `chaos-token:${token}` }) })
      if (sent.op.status === 303) writer.created.push(slug)
    } else if (r < 0.88) {
      const slug = ownSlug(name)
      const version = ownVersion.get(slug)!
      sent = await send('update', name, instance, writer.agent, 'POST', `/docs/${slug}`, { slug, token, via: 'form', expectedVersion: version }, {
        headers,
        body: form({ title: `Own ${token}`, body: `chaos-token:${token}`, version: String(version) }),
      })
      if (sent.op.status === 303) ownVersion.set(slug, version + 1)
    } else {
      await readOwn(writer, instance, { cookie: session.cookie })
    }
  }

  async function writerLoop (writer: Writer): Promise<void> {
    while (!control.stopping) {
      await (writer.session === undefined ? apiWrite(writer) : formWrite(writer))
      await sleep(random(...options.thinkMs))
    }
  }

  // --- The manager ----------------------------------------------------------------------------
  const managerAgent = new http.Agent({ keepAlive: true, maxSockets: 4, localAddress: '127.0.0.2' })
  const people = new Map([cast.boss, cast.deputy, cast.root, ...cast.members].map((person) => [person.name, person]))
  let known: { mode: Mode, version: number, maintainer: string | null } = { mode: 'normal', version: 0, maintainer: null }
  let attemptNo = 0
  let applied = 0

  async function readState (): Promise<void> {
    const { answer } = await send('state', cast.boss.name, pick(instances), managerAgent, 'GET', '/api/maintenance', {}, { headers: { authorization: basicAuth(cast.boss.name, cast.boss.password) } })
    if (answer.status === 200) known = JSON.parse(answer.body) as typeof known
  }

  async function attempt (who: string, target: Mode, expectedVersion: number): Promise<Op> {
    const person = people.get(who)!
    const token = `${options.runId}-attempt-${++attemptNo}`
    const { op, answer } = await send('switch', who, pick(instances), managerAgent, 'PUT', '/api/maintenance', { token, target, expectedVersion }, {
      headers: { authorization: basicAuth(person.name, person.password) },
      body: { mode: target, reason: token, expectedVersion },
    })
    if (answer.status === 200) {
      const state = JSON.parse(answer.body) as typeof known
      op.version = state.version
      applied++
      if (state.version > known.version) known = state
    } else if (op.code === 'QUIESCE_STATE_CONFLICT') {
      // The answer carries the current state (maintainer included: the manager may see it).
      const { state } = JSON.parse(answer.body) as { state: typeof known }
      if (state.version > known.version) known = state
    }
    return op
  }

  function nextAttempt (): { who: string, target: Mode, expectedVersion: number } {
    const r = Math.random()
    const someMember = pick(cast.members).name
    let who: string
    let target: Mode
    if (known.mode === 'normal') {
      who = r < 0.7 ? cast.boss.name : r < 0.85 ? cast.deputy.name : r < 0.95 ? cast.root.name : someMember
      const t = Math.random()
      target = t < 0.47 ? 'concurrent' : t < 0.94 ? 'exclusive' : 'normal'
    } else {
      const maintainer = known.maintainer ?? cast.boss.name
      const other = maintainer === cast.boss.name ? cast.deputy.name : cast.boss.name
      who = r < 0.72 ? maintainer : r < 0.87 ? cast.root.name : r < 0.96 ? other : someMember
      const t = Math.random()
      target = t < 0.6 ? 'normal' : t < 0.9 ? (known.mode === 'concurrent' ? 'exclusive' : 'concurrent') : known.mode
    }
    const expectedVersion = Math.random() < 0.07 ? Math.max(1, known.version - 1) : known.version
    return { who, target, expectedVersion }
  }

  async function managerLoop (): Promise<void> {
    await readState()
    while (applied < options.switches && performance.now() - t0 < options.deadlineMs) {
      const next = nextAttempt()
      if (Math.random() < 0.1) {
        // Two at once on the same version: one of them must lose (409), and both are audited.
        const rival = next.who === cast.root.name ? (known.maintainer ?? cast.boss.name) : cast.root.name
        await Promise.all([attempt(next.who, next.target, next.expectedVersion), attempt(rival, next.target === 'normal' && known.mode === 'normal' ? 'concurrent' : next.target, next.expectedVersion)])
      } else {
        // A refusal changes nothing, so the state known from the last answers stays right.
        await attempt(next.who, next.target, next.expectedVersion)
      }
      await sleep(random(...options.pauseMs))
    }
    if (known.mode !== 'normal') {
      const op = await attempt(cast.root.name, 'normal', known.version)
      if (op.status !== 200) throw new Error(`could not return the site to normal: ${op.status} ${op.code}`)
    }
  }

  // --- The commit log, read while it grows (each instance prunes it to its newest 10,000 rows) --
  const commits = new Map<number, CommitRow>()
  const baseline = Number((await options.database.writer.selectFrom('commit_log').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst())?.id ?? 0)
  let newest = baseline
  async function readCommits (): Promise<void> {
    // Ids are taken at insert and become visible at commit, a little out of order on PostgreSQL.
    const rows = await options.database.writer.selectFrom('commit_log').select(['id', 'actor', 'state_version'])
      .where('id', '>', Math.max(baseline, newest - 1000)).orderBy('id').execute()
    for (const row of rows) {
      commits.set(row.id, { id: row.id, actor: row.actor, stateVersion: row.state_version })
      newest = Math.max(newest, row.id)
    }
  }
  const poller = (async () => {
    while (control.polling) {
      await readCommits()
      await sleep(250)
    }
  })()
  poller.catch(() => {}) // awaited below; this only keeps an early failure from going unhandled

  const running = writers.map(writerLoop)
  try {
    await managerLoop()
  } finally {
    control.stopping = true
    await Promise.all(running)
    control.polling = false
    await poller
    await readCommits()
    managerAgent.destroy()
    for (const writer of writers) writer.agent.destroy()
  }
  const sorted = [...commits.values()].sort((a, b) => a.id - b.id)
  if (sorted.length > 0 && sorted[0]!.id !== baseline + 1 && sorted.length < sorted.at(-1)!.id - baseline) {
    throw new Error(`the commit log lost rows before they were read (first ${sorted[0]!.id}, expected ${baseline + 1})`)
  }
  return { ops, commits: sorted, durationMs: performance.now() - t0 }
}

/** The maintenance state row and every document, as committed. */
export async function readSite (database: Database): Promise<ChaosSnapshot['initial']> {
  const state = await database.writer.selectFrom('maintenance_state').select(['version', 'mode', 'maintainer']).where('id', '=', 1).executeTakeFirstOrThrow()
  const documents: DocumentRow[] = await database.writer.selectFrom('document').select(['slug', 'version', 'body']).orderBy('slug').execute()
  return { version: state.version, mode: state.mode, maintainer: state.maintainer, documents }
}

export async function maxAuditId (database: Database): Promise<number> {
  return Number((await database.writer.selectFrom('maintenance_log').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst())?.id ?? 0)
}

/** What the check needs from the database after a run. */
export async function snapshotAfter (database: Database, initial: ChaosSnapshot['initial'], auditAfter: number, commits: CommitRow[]): Promise<ChaosSnapshot> {
  const audit = (await database.writer.selectFrom('maintenance_log').selectAll().where('id', '>', auditAfter).orderBy('id').execute()).map((row) => ({
    id: row.id,
    actor: row.actor,
    channel: row.channel,
    instance: row.instance,
    fromMode: row.from_mode,
    toMode: row.to_mode,
    reason: row.reason,
    expectedVersion: row.expected_version,
    newVersion: row.new_version,
    outcome: row.outcome,
    detail: row.detail,
  }))
  const sqlite = database.kind === 'sqlite'
  const catalog = sqlite
    ? (await sql<{ slug: string, title: string | null, body: string | null, docTitle: string, docBody: string }>`
        select d.slug, c.title, c.body, d.title as "docTitle", d.body as "docBody" from document d left join catalog c on c.rowid = d.id`.execute(database.writer)).rows
    : (await sql<{ slug: string, title: string | null, body: string | null, docTitle: string, docBody: string }>`
        select d.slug, c.title, c.body, d.title as "docTitle", d.body as "docBody" from document d left join catalog c on c.document_id = d.id`.execute(database.writer)).rows
  const orphans = sqlite
    ? (await sql<{ n: number }>`select count(*) as n from catalog where rowid not in (select id from document)`.execute(database.writer)).rows[0]!.n
    : (await sql<{ n: string }>`select count(*) as n from catalog where document_id not in (select id from document)`.execute(database.writer)).rows[0]!.n
  return { initial, final: await readSite(database), commits, audit, catalog, catalogOrphans: Number(orphans) }
}
