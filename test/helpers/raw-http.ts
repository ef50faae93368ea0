import http from 'node:http'

export interface RawResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/**
 * One request over a real connection with the request target sent exactly as given (`inject`
 * and `fetch` normalise `/static/../manage` to `/manage`; a client that means harm does not).
 * An event stream is read until its first event and then closed, as a page that leaves does.
 */
export function rawRequest (origin: string, method: string, target: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<RawResponse> {
  const { hostname, port } = new URL(origin)
  return new Promise((resolve, reject) => {
    const request = http.request({ host: hostname, port, method, path: target, headers, agent: false, insecureHTTPParser: false }, (response) => {
      const chunks: Buffer[] = []
      const done = () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') })
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        if (String(response.headers['content-type']).startsWith('text/event-stream')) {
          request.destroy()
          done()
        }
      })
      response.on('end', done)
      response.on('error', reject)
    })
    request.setTimeout(10_000, () => request.destroy(new Error(`${method} ${target}: no answer within 10 s`)))
    request.on('error', reject)
    request.end(body)
  })
}
