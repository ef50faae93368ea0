import http from 'node:http'
import { performance } from 'node:perf_hooks'

/** One answer, with when its request was sent and when the whole answer had arrived (performance.now()). */
export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  start: number
  end: number
  /** Set when there was no answer: the connection failed or nothing came within the timeout. */
  error?: string
}

export interface RequestOptions {
  method?: string
  headers?: Record<string, string>
  /** A JSON body (objects) or a urlencoded form (URLSearchParams). */
  body?: unknown
  /** Milliseconds to wait for the whole answer; 0 for no limit. */
  timeoutMs?: number
}

/**
 * A plain HTTP request over `agent` that never rejects: a failed or silent request is an
 * answer with status 0 and `error`, so a history records it like any other answer.
 */
export function request (agent: http.Agent, url: string, options: RequestOptions = {}): Promise<Answer> {
  const headers: Record<string, string | number> = { ...options.headers }
  let payload: string | undefined
  if (options.body instanceof URLSearchParams) {
    payload = options.body.toString()
    headers['content-type'] = 'application/x-www-form-urlencoded'
  } else if (options.body !== undefined) {
    payload = JSON.stringify(options.body)
    headers['content-type'] = 'application/json'
  }
  if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload)
  const start = performance.now()
  return new Promise((resolve) => {
    let settled = false
    const settle = (answer: Omit<Answer, 'start' | 'end'>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({ ...answer, start, end: performance.now() })
    }
    const req = http.request(url, { method: options.method ?? 'GET', agent, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => settle({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', (err) => settle({ status: 0, headers: {}, body: '', error: err.message }))
    })
    const timeoutMs = options.timeoutMs ?? 30_000
    const timer = timeoutMs > 0
      ? setTimeout(() => {
        req.destroy(new Error(`no answer within ${timeoutMs} ms`))
      }, timeoutMs)
      : undefined
    req.on('error', (err) => settle({ status: 0, headers: {}, body: '', error: err.message }))
    req.end(payload)
  })
}

/** The `code` of a JSON error answer, if it is one. */
export function errorCode (answer: Answer): string | undefined {
  if (answer.status < 400 || !String(answer.headers['content-type']).includes('json')) return undefined
  try {
    return (JSON.parse(answer.body) as { code?: string }).code
  } catch {
    return undefined
  }
}

export function basicAuth (username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
}

/** The session cookie an answer sets (`quiesce.sid=…`), if any. */
export function sessionCookie (answer: Answer): string | undefined {
  const cookies = answer.headers['set-cookie'] ?? []
  for (const cookie of cookies) if (cookie.startsWith('quiesce.sid=')) return cookie.split(';')[0]
  return undefined
}

export function csrfTokenOf (html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html)
  if (match === null) throw new Error(`no CSRF token on the page: ${html.slice(0, 200)}`)
  return match[1]!
}

/** A browser's session over HTTP: its cookie and a CSRF token for forms and `x-csrf-token`. */
export interface HttpSession {
  cookie: string
  csrf: string
}

/** Signs in through the login form (as a browser would) and picks up a token from /docs/new. */
export async function signInOverHttp (agent: http.Agent, baseUrl: string, username: string, password: string): Promise<HttpSession> {
  const page = await request(agent, `${baseUrl}/login`)
  const anonymous = sessionCookie(page)
  if (page.status !== 200 || anonymous === undefined) throw new Error(`GET /login answered ${page.status} ${page.error ?? ''}`)
  const login = await request(agent, `${baseUrl}/login`, {
    method: 'POST',
    headers: { cookie: anonymous },
    body: new URLSearchParams({ username, password, _csrf: csrfTokenOf(page.body) }),
  })
  const cookie = sessionCookie(login)
  if (login.status !== 303 || cookie === undefined) throw new Error(`sign-in as ${username} answered ${login.status}: ${login.body.slice(0, 200)}`)
  const form = await request(agent, `${baseUrl}/docs/new`, { headers: { cookie } })
  if (form.status !== 200) throw new Error(`GET /docs/new as ${username} answered ${form.status}`)
  return { cookie: sessionCookie(form) ?? cookie, csrf: csrfTokenOf(form.body) }
}
