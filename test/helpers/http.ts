import http from 'node:http'

export interface HttpAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  /** Milliseconds from sending to the last byte. */
  ms: number
}

export interface HttpOptions {
  method?: string
  headers?: Record<string, string>
  /** A JSON body (objects) or a form / raw body (strings). */
  body?: unknown
  /** The client gives up after this long and rejects (a request that hangs fails the test). */
  timeoutMs?: number
  agent?: http.Agent
}

/**
 * One request over real HTTP, no retries (node:http never retries; a fetch client may resend an
 * idempotent PUT whose connection was reset, which would hide an answer the test must see).
 */
export async function httpRequest (url: string, options: HttpOptions = {}): Promise<HttpAnswer> {
  const started = performance.now()
  const headers: Record<string, string> = { ...options.headers }
  let payload: string | undefined
  if (options.body !== undefined) {
    payload = typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
    headers['content-type'] ??= typeof options.body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json'
  }
  const timeoutMs = options.timeoutMs ?? 30_000
  return await new Promise<HttpAnswer>((resolve, reject) => {
    const request = http.request(url, { method: options.method ?? 'GET', headers, agent: options.agent }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => {
        clearTimeout(timer)
        resolve({ status: response.statusCode!, headers: response.headers, body, ms: performance.now() - started })
      })
      response.on('error', fail)
    })
    const timer = setTimeout(() => fail(new Error(`no answer to ${options.method ?? 'GET'} ${url} within ${timeoutMs} ms`)), timeoutMs)
    function fail (err: Error): void {
      clearTimeout(timer)
      request.destroy()
      reject(err)
    }
    request.on('error', fail)
    request.end(payload)
  })
}

/** The `code` of a JSON error answer, else undefined. */
export function codeOf (answer: HttpAnswer): string | undefined {
  try {
    return (JSON.parse(answer.body) as { code?: string }).code
  } catch {
    return undefined
  }
}
