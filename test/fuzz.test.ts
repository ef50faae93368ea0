import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Mode, PublicState } from '../app/maintenance/index.js'
import { insertUser } from '../app/auth/users.js'
import { startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { codeOf, describeAnswer, DOCUMENTED_503_CODES, type Answer } from './helpers/answers.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { ACCOUNTS, addPrincipals, anonymousBrowser, basicOf, signedInBrowser, type Account } from './helpers/principals.js'
import { rawRequest } from './helpers/raw-http.js'
import { recordedErrors, recordedRoutes } from './helpers/app-recorder.js'
import { dataSnapshot, snapshotChanges } from './helpers/snapshot.js'
import { until } from './helpers/wait.js'

vi.mock('fastify', async (importOriginal) => (await import('./helpers/app-recorder.js')).recordingFastify(await importOriginal()))

/*
 * Property-based tests of hostile input (PRODUCT §3.2: bad input of any kind gets a 4xx, never
 * a 5xx). Every route the app registers (learnt from the app, as in the authorization matrix)
 * gets random requests: path parameters, query strings, bodies of every shape and encoding
 * (wrong types, extra fields, huge strings, deep nesting, beyond the body limit, invalid UTF-8,
 * content types that lie), headers (Accept, cookies, Basic credentials, CSRF tokens) and
 * unicode; the search routes besides get the syntax of FTS5 and tsquery. In every mode, on both
 * databases. The invariants:
 *   - never a 5xx, except the documented 503s of maintenance (and of a state that cannot be read);
 *   - a refused unsafe request writes nothing (the audit row of a refused state change aside);
 *   - the server stays up (it answers /healthz over a real connection after each route's run).
 * QUIESCE_FUZZ_RUNS sets the runs per route and mode (default 8; 200 or more for a long run),
 * QUIESCE_FUZZ_SEED replays a run.
 */

const RUNS = Number(process.env.QUIESCE_FUZZ_RUNS ?? 8)
/** A failing run prints its seed (fast-check's report); QUIESCE_FUZZ_SEED replays it. */
const SEED = process.env.QUIESCE_FUZZ_SEED === undefined ? undefined : Number(process.env.QUIESCE_FUZZ_SEED)
const SEARCH_RUNS = RUNS * 8
/** A loaded machine runs a case in ~10 ms; a route's run of RUNS cases, 60 routes, twice over: generous. */
const FUZZ_TIMEOUT = 120_000 + RUNS * 60 * 100
const MODES: Mode[] = ['normal', 'concurrent', 'exclusive']
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const BODY_LIMIT = 1024 * 1024
/** The address the test's own requests come from; fuzzed ones come from 10.66.x.y. */
const CONTROL_ADDRESS = '10.99.0.1'

/** Words FTS5 and tsquery give a meaning to, and the characters of their syntax. */
const SEARCH_SYNTAX = [
  '"', '""', '"unbalanced', "'", "''", '*', '**', 'a*', '*a', 'NEAR(', 'NEAR(a b, 2)', 'NEAR/3', 'AND', 'OR', 'NOT', 'and', 'or', '-', '--', '-a',
  '+', '^', '^a', ':', ':*', 'a:*', ':*:*', 'a:b', 'title:', 'body:a', '{title body}: a', '&', '|', '!', '&|!', '!!', '<->', '<2>', '<-1>',
  '(', ')', '()', '(((', ')))', '[', ']', '{', '}', '\\', '\\"', '/', '%', '_', '~', '@@', ';', "'; drop table document; --", '\u0000', '\uD800',
  '\uFFFF', '\u200B', 'é', 'ǅ', 'ß', 'İ', '½', '²', '٣', '🙂', '\u202E', 'the', 'a', 'matrix', 'fuzz', 'doc', 'x'.repeat(600),
]

/** Strings that broke parsers, databases and templates somewhere once. */
const NASTY_STRINGS = [
  '', ' ', '  padded  ', '\t', '\r\n', '\u0000', 'a\u0000b', '\uD800', 'a\uDFFFb', '\uFEFF', '\u202E', 'e\u0301', '💥', '👩‍👩‍👧', 'Ω', '中文',
  '<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', '{{7*7}}', '<%= it %>', '#{7*7}', '"', "'", '\\', '%', '%00', '%2e%2e',
  '../../etc/passwd', '/', '//evil.example', '/\\evil.example', 'javascript:alert(1)', 'null', 'undefined', 'NaN', 'Infinity', '-Infinity',
  '1e309', '-1', '0', '1', '2147483647', '2147483648', '-2147483649', '9007199254740993', '99999999999999999999', '0x10', '1.5', ' 1', '1 ',
  'true', 'false', '[]', '{}', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'normal', 'concurrent', 'exclusive',
  'member', 'manager', 'emergency', 'ann', 'deputy', 'boss', 'root', 'matrix', '2026-11-22T14:00:00Z', '2999-01-01T00:00:00Z',
  '2020-01-01T00:00:00Z', '2026-13-45T25:61:61Z', '+275760-09-13T00:00:00Z', 'a'.repeat(201), 'a'.repeat(501), 'x'.repeat(100_001),
]

const NUMBERS = [0, -0, 1, -1, 2, 3, 0.5, 1.5, 2147483647, 2147483648, -2147483649, 4294967296, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 1e21, 1e308, -1e308, Number.MIN_VALUE]

/** Field names the routes read, and a few more that should be ignored or refused. */
const FIELDS = [
  'slug', 'title', 'body', 'version', 'expectedVersion', 'mode', 'reason', 'until', 'startsAt', 'endsAt', 'username', 'password',
  'role', 'next', '_csrf', 'q', 'limit', 'offset', 'before', 'token', 'again', 'name', 'done',
]

const QUERY_KEYS = ['q', 'limit', 'offset', 'before', 'page', 'next', 'saved', 'changed', 'scheduled', 'added', 'expectedVersion', '__proto__', 'x']

const text: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...SEARCH_SYNTAX), { maxLength: 6 }).map((parts) => parts.join(' ')) },
  { weight: 1, arbitrary: fc.nat({ max: 20 }).map(String) }
)

const number: fc.Arbitrary<number> = fc.oneof(fc.constantFrom(...NUMBERS), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))

const { value: jsonValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    text,
    number,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 8 })), tie('value'), { maxKeys: 3 })
  ),
}))

/**
 * A body with any of the fields the routes read, each text most of the time and a value of any
 * other type otherwise: likely to get past a route's first checks and then to surprise it.
 */
const fieldsBody: fc.Arbitrary<Record<string, unknown>> = fc.tuple(
  fc.record(Object.fromEntries(FIELDS.map((field) => [field, fc.oneof({ weight: 3, arbitrary: text }, { weight: 2, arbitrary: jsonValue })])), { requiredKeys: [] }),
  fc.dictionary(fc.string({ maxLength: 8 }), jsonValue, { maxKeys: 2 })
).map(([fields, extra]) => ({ ...extra, ...fields }))

/** What goes on the wire: a content type (or none) and the bytes. */
interface Encoded { contentType: string | undefined, payload: string | Buffer | undefined }

/** Percent-encodes what encodeURIComponent can; a lone surrogate becomes invalid UTF-8 bytes. */
function encodeLoosely (value: string): string {
  let out = ''
  for (const char of value) {
    const unit = char.charCodeAt(0)
    out += unit >= 0xd800 && unit <= 0xdfff && char.length === 1
      ? `%${(0xe0 | (unit >> 12)).toString(16)}%${(0x80 | ((unit >> 6) & 0x3f)).toString(16)}%${(0x80 | (unit & 0x3f)).toString(16)}`
      : encodeURIComponent(char)
  }
  return out
}

function formEncode (body: Record<string, unknown>): string {
  const pairs: string[] = []
  for (const [key, value] of Object.entries(body)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      pairs.push(`${encodeLoosely(key)}=${encodeLoosely(typeof item === 'string' ? item : JSON.stringify(item) ?? '')}`)
    }
  }
  return pairs.join('&')
}

const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-16', 'text/plain', 'multipart/form-data; boundary=x', 'application/octet-stream',
  'application/vnd.api+json', 'APPLICATION/JSON', 'application/json, text/html', ';', '',
]

const HUGE_JSON = JSON.stringify({ title: 'huge', body: 'x'.repeat(BODY_LIMIT + 10) })
const HUGE_FORM = `title=huge&body=${'x'.repeat(BODY_LIMIT + 10)}`

const rawBodies: fc.Arbitrary<string | Buffer> = fc.oneof(
  fc.constantFrom<string | Buffer>(
    '', 'null', '0', '"text"', '[]', '{}', '{', '{"title":', '[[[[', '{"title": "a", "title": "b"}', '{"expectedVersion": 1e309}',
    '{"expectedVersion": -1e309}', '{"expectedVersion": 1e400, "mode": "exclusive"}', '{"limit": 1e309}', '{"mode": "exclusive", "expectedVersion": 2147483648}',
    '{"__proto__": {"polluted": 1}}', '{"constructor": {"prototype": {"polluted": 1}}}', '{"title": "\\u0000", "body": "\\ud800"}',
    Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from('{"title": "\xff\xfe", "body": "x"}', 'latin1'), Buffer.from('title=%ff%fe&body=%c0%af', 'latin1'),
    'title=a&title=b&body=c', 'slug[]=a&title=t&body=b', 'username=ann&username=boss&password=x', 'a=%ZZ&b=%', '=&=&&', '%00=%00',
    `${'['.repeat(5000)}${']'.repeat(5000)}`, `${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}`, HUGE_JSON, HUGE_FORM
  ),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes))
)

const body: fc.Arbitrary<Encoded> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fieldsBody, fc.constantFrom(...CONTENT_TYPES.slice(0, 2), 'application/json')).map(([value, contentType]) => ({ contentType, payload: JSON.stringify(value) })) },
  { weight: 3, arbitrary: fieldsBody.map((value) => ({ contentType: 'application/x-www-form-urlencoded', payload: formEncode(value) })) },
  { weight: 1, arbitrary: jsonValue.map((value) => ({ contentType: 'application/json', payload: JSON.stringify(value) ?? 'null' })) },
  // Content types that lie about the bytes.
  { weight: 1, arbitrary: fc.tuple(fieldsBody, fc.constantFrom(...CONTENT_TYPES), fc.boolean()).map(([value, contentType, asForm]) => ({ contentType, payload: asForm ? formEncode(value) : JSON.stringify(value) })) },
  { weight: 2, arbitrary: fc.tuple(rawBodies, fc.constantFrom(...CONTENT_TYPES, undefined)).map(([payload, contentType]) => ({ contentType, payload })) },
  { weight: 1, arbitrary: fc.constant({ contentType: undefined, payload: undefined }) }
)

const queryValue = fc.oneof({ weight: 3, arbitrary: text }, { weight: 1, arbitrary: number.map(String) }, { weight: 1, arbitrary: fc.constantFrom('1e309', '-1e309', '1e400', 'Infinity', '2147483648', '99999999999999999999', '-0', '0x1f', '1_000', '%ZZ') })
const queryString = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.constantFrom('q[]', 'limit[]', 'q[a]'), fc.string({ maxLength: 6 })), queryValue, fc.boolean()), { maxLength: 4 })
  .map((pairs) => pairs.map(([key, value, raw]) => `${encodeLoosely(key)}=${raw && /^[\x21-\x7e]*$/.test(value) && !value.includes('#') ? value : encodeLoosely(value)}`).join('&'))

type Who = 'anonymous' | 'member' | 'manager' | 'maintainer' | 'emergency'
const who = fc.constantFrom<Who>('anonymous', 'member', 'manager', 'maintainer', 'emergency')

const BAD_BASIC = [
  'Basic', 'Basic ', 'Basic !!!', 'Basic ====', `Basic ${Buffer.from('no-colon').toString('base64')}`, `Basic ${Buffer.from(':').toString('base64')}`,
  `Basic ${Buffer.from(':password').toString('base64')}`, `Basic ${Buffer.from('root:').toString('base64')}`, `Basic ${Buffer.from([0xff, 0xfe, 0x3a, 0x61]).toString('base64')}`,
  `Basic ${Buffer.from('ann\u0000:ann-password').toString('base64')}`, `Basic ${Buffer.from(`${'a'.repeat(5000)}:x`).toString('base64')}`,
  `Basic ${'A'.repeat(20_000)}`, 'Bearer token', 'Digest username="root"', `basic ${Buffer.from('ann:ann-password').toString('base64')}`,
  `Basic  ${Buffer.from('ann:ann-password').toString('base64')}`, `Basic ${Buffer.from('ANN:ann-password').toString('base64')}`,
]

/** How the request authenticates, besides who it is. */
const credentials = fc.record({
  by: fc.constantFrom<'session' | 'basic'>('session', 'session', 'basic'),
  csrf: fc.constantFrom<'valid' | 'missing' | 'garbage'>('valid', 'valid', 'valid', 'missing', 'garbage'),
  badBasic: fc.option(fc.constantFrom(...BAD_BASIC), { freq: 12 }),
  cookie: fc.constantFrom<'own' | 'none' | 'mangled' | 'long' | 'garbage'>('own', 'own', 'own', 'own', 'own', 'none', 'mangled', 'long', 'garbage'),
})

const ACCEPTS = [undefined, 'application/json', 'text/html', '*/*', 'text/event-stream', 'application/json;q=0', 'text/html;q=0, application/json', 'garbage/', '', 'application/json, text/html', 'x'.repeat(3000)]

const headerValue = fc.string({ unit: 'grapheme-ascii', maxLength: 60 })

const params = fc.array(fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom('fixture', 'fixture', '1', '0', '-1', '2147483647', '2147483648', '1e309', 'Infinity', 'NaN', '0x10', '1.0', '%201', 'new', '..', '%2e%2e', '%2f', '%00', '%ff', '9'.repeat(400)) },
  { weight: 1, arbitrary: text.map(encodeLoosely) }
), { minLength: 1, maxLength: 2 })

function requests (query: fc.Arbitrary<string | null>) {
  return fc.record({
    who,
    credentials,
    params,
    query,
    body,
    accept: fc.constantFrom(...ACCEPTS),
    extraHeaders: fc.dictionary(fc.constantFrom('x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'origin', 'referer', 'if-none-match', 'range', 'x-csrf-token', 'accept-language', 'user-agent'), headerValue, { maxKeys: 2 }),
  })
}

const request = requests(fc.option(queryString, { freq: 3 }))

/** Search terms mixed with the syntax of FTS5 and tsquery, glued together or apart. */
const searchRequest = requests(fc.tuple(fc.array(fc.oneof(fc.constantFrom(...SEARCH_SYNTAX), text), { minLength: 1, maxLength: 8 }), fc.constantFrom(' ', '', '  ', '+'))
  .map(([parts, glue]) => `q=${encodeLoosely(parts.join(glue))}&limit=5`))
type FuzzRequest = typeof request extends fc.Arbitrary<infer T> ? T : never

interface Problem { route: string, answer: string, request: string, error?: string }

const counts: Record<string, number> = {}

describe.each(DATABASE_KINDS)('hostile input on %s', (kind) => {
  let site: TestSite
  let origin: string
  const browsers = new Map<Who, Browser>()
  const hashes = new Map<string, string>()
  let task: number
  let window: number

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site)
    for (const { username } of Object.values(ACCOUNTS)) {
      const row = await site.database.writer.selectFrom('app_user').select('password_hash').where('username', '=', username).executeTakeFirst()
      if (row !== undefined) hashes.set(username, row.password_hash)
    }
    origin = await site.app.listen({ port: 0, host: '127.0.0.1' })
    for (const slug of ['fixture', 'fuzz-one', 'fuzz-two']) {
      await site.app.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: basicOf('emergency') }, payload: { title: `Fuzz ${slug}`, body: 'The matrix and the fuzz doc: words to find, "quoted" and NEAR(them).' } })
    }
    task = (await site.app.inject({ method: 'POST', url: '/api/tasks/export', headers: { authorization: basicOf('emergency') } })).json<{ id: number }>().id
    await until('the fixture export to finish', async () => (await site.app.inject({ url: `/api/tasks/${task}`, headers: { authorization: basicOf('emergency') } })).json<{ state: string }>().state === 'done', 30_000)
    window = (await site.app.inject({ method: 'POST', url: '/api/maintenance/windows', headers: { authorization: basicOf('emergency') }, payload: { mode: 'concurrent', startsAt: '2095-01-01T00:00:00Z', endsAt: '2095-01-01T01:00:00Z' } })).json<{ id: number }>().id
  })
  afterAll(async () => {
    await site?.close()
  })

  /**
   * Gives the principals back their accounts and sessions, whatever fuzzed requests did to them
   * (a manager's fuzzed request may disable, demote or remove ann, a POST /logout end a session),
   * so that every route's run starts with all five.
   */
  async function restorePrincipals (): Promise<void> {
    for (const account of ['member', 'manager', 'maintainer'] as const) {
      const { username } = ACCOUNTS[account]
      const role = account === 'member' ? 'member' : 'manager'
      const row = await site.database.writer.selectFrom('app_user').select(['id', 'role', 'disabled_at', 'password_hash']).where('username', '=', username).executeTakeFirst()
      if (row === undefined) await insertUser(site.database.writer, { username, passwordHash: hashes.get(username)!, role })
      else if (row.role !== role || row.disabled_at !== null || row.password_hash !== hashes.get(username)) {
        await site.database.writer.updateTable('app_user').set({ role, disabled_at: null, password_hash: hashes.get(username)! }).where('id', '=', row.id).execute()
      }
    }
    for (const principal of ['anonymous', ...Object.keys(ACCOUNTS)] as Who[]) {
      const browser = browsers.get(principal)
      const page = browser === undefined ? undefined : await site.app.inject({ url: '/login', headers: { cookie: browser.cookie } })
      const stillThere = page !== undefined && (principal === 'anonymous' || page.body.includes(`data-testid="signed-in-user">${ACCOUNTS[principal].username}<`))
      if (!stillThere) browsers.set(principal, principal === 'anonymous' ? await anonymousBrowser(site.app) : await signedInBrowser(site.app, principal as Account))
    }
  }

  /**
   * Puts the site in `mode`, with boss as maintainer, whatever a fuzzed request did to the state;
   * from an address of its own, which fuzzed wrong passwords never get limited (429).
   */
  async function ensureMode (mode: Mode): Promise<void> {
    const asEmergencyUser = { authorization: basicOf('emergency') }
    for (let attempt = 1; ; attempt++) {
      const state = (await site.app.inject({ url: '/api/maintenance', headers: asEmergencyUser, remoteAddress: CONTROL_ADDRESS })).json<PublicState>()
      if (state.mode === mode && (mode === 'normal' || state.maintainer === ACCOUNTS.maintainer.username)) return
      const change = await site.app.inject({
        method: 'PUT',
        url: '/api/maintenance',
        headers: state.mode !== 'normal' ? asEmergencyUser : { authorization: basicOf('maintainer') },
        payload: state.mode !== 'normal' ? { mode: 'normal', expectedVersion: state.version } : { mode, reason: 'fuzz', expectedVersion: state.version },
        remoteAddress: CONTROL_ADDRESS,
      })
      if (change.statusCode !== 200 && attempt >= 5) throw new Error(`cannot switch to ${mode}: ${change.body}`)
    }
  }

  function urlFor (route: string, input: FuzzRequest): string {
    let index = 0
    const path = route.replace(/:[a-z]+|\*/gi, (name) => {
      const value = input.params[index++ % input.params.length]!
      if (value !== 'fixture') return value
      if (name === '*') return 'quiesce.css'
      if (name === ':id') return route.includes('windows') ? String(window) : String(task)
      if (name === ':username') return ACCOUNTS.member.username
      return 'fixture'
    })
    return input.query === null || input.query === '' ? path : `${path}?${input.query}`
  }

  async function headersFor (method: string, input: FuzzRequest): Promise<Record<string, string>> {
    const headers: Record<string, string> = { ...input.extraHeaders }
    if (input.accept !== undefined) headers.accept = input.accept
    const { by, csrf, badBasic, cookie } = input.credentials
    if (input.who !== 'anonymous' && by === 'basic') headers.authorization = basicOf(input.who)
    if (by === 'session' || input.who === 'anonymous') {
      const browser = browsers.get(input.who)!
      if (cookie === 'own') headers.cookie = browser.cookie
      else if (cookie === 'mangled') headers.cookie = `${browser.cookie.slice(0, -3)}abc`
      else if (cookie === 'long') headers.cookie = `${browser.cookie}; filler=${'x'.repeat(8000)}`
      else if (cookie === 'garbage') headers.cookie = 'quiesce.sid=%ZZ; =; ;;'
      if (UNSAFE.has(method) && csrf !== 'missing') headers['x-csrf-token'] = csrf === 'valid' ? browser.csrf : 'garbage-token'
    }
    if (badBasic !== null) headers.authorization = badBasic
    return headers
  }

  /** Sends one fuzzed request; a form body carries the CSRF token in `_csrf` too, as a browser's does. */
  async function send (method: string, route: string, input: FuzzRequest): Promise<{ answer: Answer, url: string, headers: Record<string, string> }> {
    const url = urlFor(route, input)
    const headers = await headersFor(method, input)
    let payload = input.body.payload
    if (input.body.contentType !== undefined && payload !== undefined) headers['content-type'] = input.body.contentType
    if (typeof payload === 'string' && input.body.contentType === 'application/x-www-form-urlencoded' && headers['x-csrf-token'] !== undefined) {
      payload = `${payload}${payload === '' ? '' : '&'}_csrf=${encodeURIComponent(headers['x-csrf-token'])}`
    }
    if (method === 'GET' || method === 'HEAD') payload = undefined
    if (route.endsWith('/events')) {
      const raw = await rawRequest(origin, method, url, headers, payload)
      return { answer: { status: raw.status, headers: raw.headers, body: raw.body }, url, headers }
    }
    const response = await site.app.inject({ method: method as 'GET', url, headers, payload, remoteAddress: `10.66.${input.params.length}.${url.length % 250}` })
    return { answer: { status: response.statusCode, headers: response.headers, body: response.body }, url, headers }
  }

  function isAcceptable (answer: Answer): boolean {
    if (answer.status < 500) return true
    const code = codeOf(answer)
    return answer.status === 503 && code !== undefined && DOCUMENTED_503_CODES.includes(code)
  }

  async function fuzzRoute (method: string, route: string, runs: number, arbitrary: fc.Arbitrary<FuzzRequest> = request): Promise<Problem[]> {
    const problems: Problem[] = []
    await fc.assert(fc.asyncProperty(arbitrary, async (input) => {
      const weighed = UNSAFE.has(method)
      const before = weighed ? await dataSnapshot(site.database) : undefined
      recordedErrors.length = 0
      const { answer, url, headers } = await send(method, route, input)
      const after = weighed ? await dataSnapshot(site.database) : undefined
      counts[kind] = (counts[kind] ?? 0) + 1
      const shown = () => `${method} ${url.slice(0, 300)} ${JSON.stringify({ ...headers, cookie: headers.cookie?.slice(0, 40) }).slice(0, 300)} ${String(input.body.contentType)} ${String(input.body.payload ?? '').slice(0, 300)}`
      if (!isAcceptable(answer)) problems.push({ route: `${method} ${route}`, answer: `${describeAnswer(answer)} ${answer.body.slice(0, 200)}`, request: shown(), error: recordedErrors.at(-1) })
      if (before !== undefined && after !== undefined && answer.status >= 400) {
        const changes = snapshotChanges(before, after).filter((change) => !(change === 'audit+1' && route.endsWith('/maintenance')))
        if (changes.length > 0) problems.push({ route: `${method} ${route}`, answer: `${answer.status} and wrote ${JSON.stringify(changes)}`, request: shown() })
      }
    }), { numRuns: runs, seed: SEED })
    return problems
  }

  async function stillUp (): Promise<void> {
    const health = await rawRequest(origin, 'GET', '/healthz')
    expect(health.status).toBe(200)
  }

  /** The app's routes (learnt from it), HEAD aside: a HEAD route runs its GET's handler. */
  function fuzzedRoutes (): string[] {
    return [...new Set(recordedRoutes.filter((route) => route.method !== 'HEAD').map((route) => `${route.method} ${route.url}`))]
  }

  describe.each(MODES)('in %s mode', (mode) => {
    beforeAll(async () => { await ensureMode(mode) })

    it('no route answers a 5xx (but the documented 503s), and no refused request writes', { timeout: FUZZ_TIMEOUT }, async () => {
      const routes = fuzzedRoutes()
      expect(routes.length).toBeGreaterThan(40)
      const problems: Problem[] = []
      for (const key of routes) {
        const [method, route] = key.split(' ') as [string, string]
        await ensureMode(mode)
        await restorePrincipals()
        problems.push(...await fuzzRoute(method, route, RUNS))
        await stillUp()
      }
      expect(distinct(problems)).toEqual([])
    })

    it('search syntax of FTS5 and tsquery is only text', { timeout: FUZZ_TIMEOUT }, async () => {
      await ensureMode(mode)
      await restorePrincipals()
      const problems = [...await fuzzRoute('GET', '/api/search', SEARCH_RUNS, searchRequest), ...await fuzzRoute('GET', '/search', SEARCH_RUNS, searchRequest)]
      await stillUp()
      expect(distinct(problems)).toEqual([])
    })
  })

  afterAll(async () => { await ensureMode('normal').catch(() => undefined) })
})

/** One example of each kind of problem per route, so a report stays readable. */
function distinct (problems: Problem[]): Problem[] {
  const seen = new Set<string>()
  return problems.filter((problem) => {
    const key = `${problem.route} ${problem.answer.slice(0, 40)}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

afterAll(() => {
  console.log(`fuzz: ${Object.entries(counts).map(([kind, n]) => `${n} cases on ${kind}`).join(', ')} (QUIESCE_FUZZ_RUNS=${RUNS} per route and mode)`)
})
