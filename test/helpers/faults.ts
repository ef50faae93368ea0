import http from 'node:http'
import { sql, type Kysely } from 'kysely'
import { expect } from 'vitest'
import type { Database } from '../../app/db/database.js'
import { httpRequest } from './http.js'
import { catalogRows, freshBuild } from './tasks.js'
import type { WriteCheck } from './write-load.js'

/** The figures of one fault, as the suites print them. */
export function writeFigures (check: WriteCheck, longestMs?: number): Record<string, number> {
  return {
    writeAttempts: check.attempts,
    acknowledged: check.acked,
    refused: check.refused,
    unknownOutcome: check.unknown,
    lost: check.lost.length,
    refusedPresent: check.refusedPresent.length,
    wrongFinal: check.wrongFinal.length,
    bad5xx: check.bad.length,
    ...(longestMs === undefined ? {} : { longestRequestMs: Math.round(longestMs) }),
  }
}

/** No acknowledged write lost, no refused one present, no 5xx but a coded 503. */
export function expectNothingLost (check: WriteCheck): void {
  expect(check.bad, 'no 5xx but a coded 503').toEqual([])
  expect(check.lost, 'acknowledged writes missing').toEqual([])
  expect(check.refusedPresent, 'refused writes present').toEqual([])
  expect(check.wrongFinal, 'documents with neither their last acknowledged write nor a later one of unknown outcome').toEqual([])
  expect(check.acked).toBeGreaterThan(0)
}

/**
 * No unit of work half-applied: each document and its catalog entry agree, i.e. the catalog is
 * exactly what a fresh build from the documents gives (PostgreSQL: search vectors included).
 */
export async function expectCatalogAgrees (database: Database): Promise<void> {
  const fresh = await freshBuild(database.kind, database, [])
  expect(await catalogRows(database)).toEqual(fresh.rows)
}

/** Search finds each document by the word it holds now, and nothing by words later acknowledged writes replaced. */
export async function expectSearchFinds (base: string, check: WriteCheck): Promise<void> {
  for (const [slug, token] of check.current) {
    const answer = await httpRequest(`${base}/api/search?q=${token}`)
    expect(answer.status).toBe(200)
    expect((JSON.parse(answer.body) as { hits: Array<{ slug: string }> }).hits.map((hit) => hit.slug), token).toEqual([slug])
  }
  for (const token of check.superseded.slice(0, 20)) {
    const answer = await httpRequest(`${base}/api/search?q=${token}`)
    expect(JSON.parse(answer.body).hits, token).toEqual([])
  }
}

/** A PostgreSQL setting as a session of `db` has it. */
export async function showSetting (db: Kysely<any>, name: string): Promise<string> {
  const { rows } = await sql<Record<string, string>>`${sql.raw(`show ${name}`)}`.execute(db)
  return rows[0]![name]!
}

/** The first event of an event stream; then the connection is closed. */
export async function firstEvent (url: string, cookie: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      request.destroy()
      reject(new Error('no event within 10 s'))
    }, 10_000)
    const request = http.get(url, { headers: { cookie, accept: 'text/event-stream' } }, (response) => {
      if (response.statusCode !== 200) reject(new Error(`the event stream answered ${response.statusCode}`))
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        text += chunk
        if (text.includes('\n\n')) {
          clearTimeout(timer)
          request.destroy()
          resolve(text)
        }
      })
    })
    request.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** The session cookie a page set (`quiesce.sid=…`). */
export function sessionCookieFrom (headers: http.IncomingHttpHeaders): string {
  const cookie = (headers['set-cookie'] ?? []).map((line) => line.split(';')[0]!).find((pair) => pair.startsWith('quiesce.sid='))
  if (cookie === undefined) throw new Error('the page set no session cookie')
  return cookie
}
