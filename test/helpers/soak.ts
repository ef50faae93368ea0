/**
 * The soak (issue 7, item 7), shared by test/soak.test.ts (seconds) and bench/soak.ts (60 s):
 * one `quiesce serve` process with test/helpers/soak-probe.ts inside, event streams opened and
 * closed, and mixed load (reads, writes, searches, sign-ins, event streams) across mode changes;
 * between rounds the probe says what the process holds after garbage collection.
 */
import type { ChildProcess } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { writeEmergencyUser } from '../../app/auth/access-file.js'
import { hashPassword } from '../../app/auth/passwords.js'
import { insertUser } from '../../app/auth/users.js'
import { openDatabase } from '../../app/db/database.js'
import { ROOT, startInstance, type Instance } from './cluster.js'
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './databases.js'
import { basicAuth, csrfTokenOf, errorCode, request, sessionCookie, type Answer } from './http-client.js'
import type { ProbeAnswer } from './soak-probe.js'

const PROBE = path.join(ROOT, 'test/helpers/soak-probe.ts')
export const SOAK_MEMBERS = 20
const MANAGER = { name: 'soak-boss', password: 'soak-boss-password' }
const member = (i: number) => ({ name: `soak-m${i}`, password: `soak-m${i}-password` })
const WORDS = ['hinge', 'brass', 'oak', 'drawer', 'screw', 'soak', 'polished', 'kitchen']

export interface SoakSite {
  kind: DatabaseKind
  testDatabase: TestDatabase
  server: Instance
  close (): Promise<void>
}

/** A site with a manager, members and 100 documents, served by one probed process. */
export async function startSoakSite (kind: DatabaseKind): Promise<SoakSite> {
  const testDatabase = await createTestDatabase(kind)
  const database = await openDatabase(testDatabase.url)
  await insertUser(database.writer, { username: MANAGER.name, passwordHash: await hashPassword(MANAGER.password), role: 'manager' })
  const members = Array.from({ length: SOAK_MEMBERS }, (_, i) => member(i))
  const hashes = await Promise.all(members.map((m) => hashPassword(m.password)))
  for (const [i, m] of members.entries()) await insertUser(database.writer, { username: m.name, passwordHash: hashes[i]!, role: 'member' })
  await writeEmergencyUser(path.join(testDatabase.dataDir, 'access'), 'soak-root', await hashPassword('soak-root-password'))
  // Closed before the server starts: every connection to the database is then the server's.
  await database.destroy()
  const server = await startInstance(testDatabase, `soak-${kind}`, { nodeArgs: ['--expose-gc'], preload: [PROBE], ipc: true })
  const agent = new http.Agent({ keepAlive: true })
  for (let i = 0; i < 100; i++) {
    const answer = await request(agent, `${server.url}/api/docs/soak-${i}`, {
      method: 'PUT',
      headers: { authorization: basicAuth(MANAGER.name, MANAGER.password) },
      body: { title: `Soak ${WORDS[i % WORDS.length]} ${i}`, body: `A ${WORDS[(i + 3) % WORDS.length]} for the soak, number ${i}.\n\n## Notes\n\n- ${WORDS[(i + 5) % WORDS.length]}` },
    })
    if (answer.status !== 201) throw new Error(`PUT soak-${i}: ${answer.status} ${answer.body}`)
  }
  agent.destroy()
  return {
    kind,
    testDatabase,
    server,
    async close () {
      await server.stop()
      await testDatabase.drop()
    },
  }
}

/** What the server process holds right now, after garbage collection. */
export async function probe (child: ChildProcess): Promise<ProbeAnswer> {
  return await ask<ProbeAnswer>(child, { type: 'probe' }, 'probe')
}

export async function plantLeak (child: ChildProcess): Promise<void> {
  await ask(child, { type: 'plant-leak' }, 'planted')
}

function ask<T> (child: ChildProcess, message: object, answerType: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage)
      reject(new Error(`the probe did not answer ${JSON.stringify(message)} within 30 s`))
    }, 30_000)
    function onMessage (answer: { type?: string, message?: string }): void {
      if (answer.type !== answerType && answer.type !== 'error') return
      clearTimeout(timer)
      child.off('message', onMessage)
      if (answer.type === 'error') reject(new Error(answer.message))
      else resolve(answer as T)
    }
    child.on('message', onMessage)
    child.send(message)
  })
}

/** The server's PostgreSQL connections (both pools and the listener), as PostgreSQL sees them. */
export async function postgresConnections (site: SoakSite): Promise<number | undefined> {
  if (site.testDatabase.url.kind !== 'postgres') return undefined
  const client = new pg.Client({ connectionString: site.testDatabase.url.url, application_name: 'soak-observer' })
  await client.connect()
  try {
    const { rows } = await client.query<{ n: string }>("select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'quiesce%'")
    return Number(rows[0]!.n)
  } finally {
    await client.end()
  }
}

export interface StreamResult { opened: number, failed: number, ms: number }

/**
 * Opens `count` event streams, `concurrency` at a time, each on its own connection (as browsers
 * do): it waits for the first `state` event, then closes the connection.
 */
export async function churnStreams (baseUrl: string, count: number, concurrency: number): Promise<StreamResult> {
  const start = performance.now()
  let next = 0
  let opened = 0
  let failed = 0
  const one = () => new Promise<boolean>((resolve) => {
    let done = false
    const finish = (ok: boolean) => {
      if (done) return
      done = true
      resolve(ok)
    }
    const req = http.get(`${baseUrl}/api/maintenance/events`, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      let seen = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        seen += chunk
        if (seen.includes('event: state')) {
          finish(true)
          req.destroy()
        }
      })
      res.on('end', () => finish(false))
      res.on('error', () => finish(false))
    })
    req.setTimeout(15_000, () => req.destroy(new Error('no state event within 15 s')))
    req.on('error', () => finish(false))
    req.on('close', () => finish(false))
  })
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      next++
      if (await one()) opened++
      else failed++
    }
  }))
  return { opened, failed, ms: performance.now() - start }
}

export interface LoadResult {
  seconds: number
  requests: number
  /** Status counts by kind of request ("read 200": n). */
  statuses: Record<string, number>
  /** Answers outside the documented ones (5xx other than 503s, no answer, unexpected 4xx). */
  unexpected: string[]
  latency: Record<string, { p50: number, p99: number, max: number, n: number }>
  /** p99 per kind in each third of the run, to see whether answers slow down over time. */
  p99ByThird: Record<string, number[]>
  switches: number
  streams: StreamResult
  signIns: number
  rateLimited: number
}

/**
 * `seconds` of mixed load: readers, searchers, writers, a sign-in/sign-out loop, event streams
 * opened and closed, and a manager switching normal → concurrent → normal → exclusive → … every
 * `switchEveryMs`. Ends in normal mode with every client connection closed.
 */
export async function mixedLoad (baseUrl: string, seconds: number, options: { switchEveryMs?: number, signInEveryMs?: number } = {}): Promise<LoadResult> {
  const t0 = performance.now()
  const deadline = t0 + seconds * 1000
  const samples: Array<{ kind: string, at: number, ms: number }> = []
  const statuses: Record<string, number> = {}
  const unexpected: string[] = []
  const agents: http.Agent[] = []
  // Each client from an address of its own (127.0.0.0/8 is all loopback): sign-in limits are per address.
  const agentOf = (localAddress = `127.0.0.${10 + agents.length}`) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress })
    agents.push(agent)
    return agent
  }
  let signIns = 0
  let rateLimited = 0
  let switches = 0

  function record (kind: string, answer: Answer, allowed: (answer: Answer) => boolean): void {
    samples.push({ kind, at: answer.start - t0, ms: answer.end - answer.start })
    const key = `${kind} ${answer.status}`
    statuses[key] = (statuses[key] ?? 0) + 1
    if (!allowed(answer)) unexpected.push(`${kind}: ${answer.status} ${errorCode(answer) ?? ''} ${answer.error ?? answer.body.slice(0, 120)}`)
  }
  const okOrClosed = (answer: Answer) => answer.status === 200 || (answer.status === 503 && errorCode(answer) !== 'QUIESCE_INTERNAL')
  const slug = () => `soak-${Math.floor(Math.random() * 100)}`

  async function reader (): Promise<void> {
    const agent = agentOf()
    while (performance.now() < deadline) {
      const r = Math.random()
      const url = r < 0.4 ? `/docs/${slug()}` : r < 0.8 ? `/api/docs/${slug()}` : '/'
      record('read', await request(agent, baseUrl + url), okOrClosed)
    }
  }
  async function searcher (): Promise<void> {
    const agent = agentOf()
    while (performance.now() < deadline) {
      const q = WORDS[Math.floor(Math.random() * WORDS.length)]!.slice(0, 2 + Math.floor(Math.random() * 4))
      record('search', await request(agent, `${baseUrl}/api/search?q=${encodeURIComponent(q)}`), okOrClosed)
    }
  }
  async function writer (i: number): Promise<void> {
    const agent = agentOf()
    const who = member(i)
    let n = 0
    while (performance.now() < deadline) {
      const answer = await request(agent, `${baseUrl}/api/docs/${slug()}`, {
        method: 'PUT',
        headers: { authorization: basicAuth(who.name, who.password) },
        body: { title: `Soak edit ${i}-${++n}`, body: `Edited by ${who.name} (${n}): ${WORDS[n % WORDS.length]}` },
      })
      record('write', answer, (a) => a.status === 200 || a.status === 201 || (a.status === 409 && errorCode(a) === 'QUIESCE_CONFLICT') ||
        (a.status === 503 && (errorCode(a) === 'QUIESCE_READ_ONLY' || errorCode(a) === 'QUIESCE_EXCLUSIVE')))
    }
  }
  async function signer (): Promise<void> {
    let i = 0
    while (performance.now() < deadline) {
      // A new browser each time, from the same address.
      const agent = agentOf('127.0.0.3')
      const who = member(SOAK_MEMBERS - 1 - (i++ % SOAK_MEMBERS))
      const page = await request(agent, `${baseUrl}/login`)
      record('sign-in page', page, (a) => a.status === 200)
      const cookie = sessionCookie(page)
      if (cookie !== undefined) {
        const login = await request(agent, `${baseUrl}/login`, { method: 'POST', headers: { cookie }, body: new URLSearchParams({ username: who.name, password: who.password, _csrf: csrfTokenOf(page.body) }) })
        record('sign-in', login, (a) => a.status === 303 || a.status === 429)
        if (login.status === 429) rateLimited++
        const session = sessionCookie(login)
        if (login.status === 303 && session !== undefined) {
          signIns++
          const home = await request(agent, `${baseUrl}/`, { headers: { cookie: session } })
          record('read', home, okOrClosed)
          const token = /action="\/logout"[\s\S]*?name="_csrf" value="([^"]+)"/.exec(home.body)?.[1]
          if (token !== undefined) {
            const out = await request(agent, `${baseUrl}/logout`, { method: 'POST', headers: { cookie: sessionCookie(home) ?? session }, body: new URLSearchParams({ _csrf: token }) })
            record('sign-out', out, (a) => a.status === 303)
          }
        }
      }
      agent.destroy()
      await sleep(options.signInEveryMs ?? 1000)
    }
  }
  async function manager (): Promise<void> {
    const agent = agentOf()
    const authorization = basicAuth(MANAGER.name, MANAGER.password)
    const cycle = ['concurrent', 'normal', 'exclusive', 'normal'] as const
    let i = 0
    let version = (JSON.parse((await request(agent, `${baseUrl}/api/maintenance`)).body) as { version: number }).version
    const change = async (mode: string) => {
      const answer = await request(agent, `${baseUrl}/api/maintenance`, { method: 'PUT', headers: { authorization }, body: { mode, reason: 'soak', expectedVersion: version } })
      record('switch', answer, (a) => a.status === 200)
      if (answer.status === 200) {
        version = (JSON.parse(answer.body) as { version: number }).version
        switches++
      }
      return answer.status === 200
    }
    let mode: string = 'normal'
    while (performance.now() < deadline) {
      await sleep(options.switchEveryMs ?? 1500)
      const next = cycle[i++ % cycle.length]!
      if (await change(next)) mode = next
    }
    if (mode !== 'normal') await change('normal')
  }

  const streamsPromise = (async () => {
    const total: StreamResult = { opened: 0, failed: 0, ms: 0 }
    while (performance.now() < deadline) {
      const round = await churnStreams(baseUrl, 20, 5)
      total.opened += round.opened
      total.failed += round.failed
      total.ms += round.ms
    }
    return total
  })()
  await Promise.all([
    ...Array.from({ length: 4 }, reader),
    ...Array.from({ length: 2 }, searcher),
    ...Array.from({ length: 3 }, (_, i) => writer(i)),
    signer(),
    manager(),
  ])
  const streams = await streamsPromise
  for (const agent of agents) agent.destroy()

  const latency: LoadResult['latency'] = {}
  const p99ByThird: LoadResult['p99ByThird'] = {}
  const span = performance.now() - t0
  for (const kind of new Set(samples.map((s) => s.kind))) {
    const mine = samples.filter((s) => s.kind === kind)
    const ms = mine.map((s) => s.ms)
    latency[kind] = { p50: round(percentile(ms, 50)), p99: round(percentile(ms, 99)), max: round(Math.max(...ms)), n: ms.length }
    p99ByThird[kind] = [0, 1, 2].map((third) => round(percentile(mine.filter((s) => Math.min(2, Math.floor((s.at / span) * 3)) === third).map((s) => s.ms), 99)))
  }
  return { seconds: span / 1000, requests: samples.length, statuses, unexpected, latency, p99ByThird, switches, streams, signIns, rateLimited }
}

function round (value: number): number {
  return Number.isFinite(value) ? Math.round(value * 10) / 10 : value
}

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** Waits until the server holds no client connection (the clients have closed theirs). */
export async function quiet (child: ChildProcess, timeoutMs = 20_000): Promise<ProbeAnswer> {
  const start = performance.now()
  for (;;) {
    const answer = await probe(child)
    if (answer.connections === 0 || performance.now() - start > timeoutMs) return answer
    await sleep(200)
  }
}

export function mb (bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

/** Growth beyond these, from one probe to a later one, is a finding. */
export const LEAK_LIMITS = {
  /**
   * Heap after GC: a retained request with its reply and socket is several KB, so a few hundred
   * leaked ones exceed it. What does grow is bounded: the Markdown cache (8 M characters) keeps
   * the texts the soak's edits produce and its readers render, about 1 MB a minute here.
   */
  heapBytes: 4 * 1024 * 1024,
  rssBytes: 64 * 1024 * 1024,
  fds: 25,
  /** By resource type; TCP sockets include the PostgreSQL pools (2 × 10) and the listener, which open on demand. */
  resources: { TCPSocketWrap: 21, Timeout: 5 } as Record<string, number>,
  otherResources: 2,
}

/** What grew from `before` to `after` beyond {@link LEAK_LIMITS} (empty: nothing). */
export function leakFindings (before: ProbeAnswer, after: ProbeAnswer): string[] {
  const findings: string[] = []
  const heap = after.heapUsed - before.heapUsed
  if (heap > LEAK_LIMITS.heapBytes) findings.push(`heap after GC grew by ${mb(heap)} (${mb(before.heapUsed)} → ${mb(after.heapUsed)}; limit ${mb(LEAK_LIMITS.heapBytes)})`)
  const rss = after.rss - before.rss
  if (rss > LEAK_LIMITS.rssBytes) findings.push(`RSS grew by ${mb(rss)} (limit ${mb(LEAK_LIMITS.rssBytes)})`)
  if (after.connections > 0) findings.push(`${after.connections} client connections still open`)
  if (after.fds - before.fds > LEAK_LIMITS.fds) findings.push(`open file descriptors ${before.fds} → ${after.fds}`)
  const grown = (type: string) => (after.resources[type] ?? 0) - (before.resources[type] ?? 0)
  for (const type of new Set([...Object.keys(before.resources), ...Object.keys(after.resources)])) {
    // An idle PostgreSQL pool client holds a socket and its idle timer (10 s).
    const poolTimers = type === 'Timeout' ? Math.max(0, grown('TCPSocketWrap')) : 0
    if (grown(type) > (LEAK_LIMITS.resources[type] ?? LEAK_LIMITS.otherResources) + poolTimers) findings.push(`${type} handles ${before.resources[type] ?? 0} → ${after.resources[type] ?? 0}`)
  }
  return findings
}

function describeProbe (answer: ProbeAnswer): string {
  const handles = Object.entries(answer.resources).sort().map(([type, n]) => `${type} ${n}`).join(', ')
  return `heap ${mb(answer.heapUsed)}, RSS ${mb(answer.rss)}, fds ${answer.fds}, connections ${answer.connections}, handles: ${handles}`
}

/** A few lines per round for the output. */
export function soakSummary (title: string, first: ProbeAnswer, rounds: Array<{ streams: StreamResult, load: LoadResult, after: ProbeAnswer, postgres?: number }>): string {
  const lines = [`${title}`, `  before:  ${describeProbe(first)}`]
  rounds.forEach(({ streams, load, after, postgres }, i) => {
    const latency = Object.entries(load.latency).sort().map(([kind, l]) => `${kind} ${l.p50}/${l.p99}/${l.max} (${l.n})`).join(', ')
    lines.push(
      `  round ${i + 1}: ${streams.opened} event streams opened and closed in ${(streams.ms / 1000).toFixed(1)} s (${streams.failed} failed); ` +
        `${load.seconds.toFixed(1)} s of mixed load: ${load.requests} requests, ${load.switches} mode changes, ${load.streams.opened} more streams, ${load.signIns} sign-ins (${load.rateLimited} answered 429), ${load.unexpected.length} unexpected answers`,
      `    p50/p99/max ms (n): ${latency}`,
      `    p99 by third of the run: ${Object.entries(load.p99ByThird).sort().map(([kind, p]) => `${kind} ${p.join(' → ')}`).join(', ')}`,
      `    after:   ${describeProbe(after)}${postgres === undefined ? '' : `, PostgreSQL connections ${postgres}`}`
    )
  })
  return lines.join('\n')
}
