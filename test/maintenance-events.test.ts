import { once } from 'node:events'
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, readState, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf } from './helpers/principals.js'

const BOSS = basicOf('maintainer')
const ROOT = basicOf('emergency')

interface ServerSentEvent {
  id?: string
  event?: string
  data?: unknown
}

/** Rejects after `ms`, so that a stream that never delivers fails the test instead of hanging it. */
function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms) }),
  ]).finally(() => clearTimeout(timer))
}

/**
 * An event stream over real HTTP, read event by event as a browser's EventSource would.
 * `http` closes the connection when the test closes the stream, as a browser leaving the page
 * does; `fetch` (undici) keeps an aborted stream's socket open until its own keep-alive ends,
 * which would only make each suite wait for it, so it is used where the server ends the stream.
 */
async function openEvents (url: string, headers: Record<string, string> = {}, client: 'http' | 'fetch' = 'http') {
  const requestHeaders = { accept: 'text/event-stream', ...headers }
  let status: number
  let header: (name: string) => string | undefined
  let read: () => Promise<Uint8Array | undefined>
  let close: () => void
  if (client === 'fetch') {
    const abort = new AbortController()
    const response = await fetch(url, { headers: requestHeaders, signal: abort.signal })
    const reader = response.body!.getReader()
    status = response.status
    header = (name) => response.headers.get(name) ?? undefined
    read = async () => (await reader.read()).value
    close = () => abort.abort()
  } else {
    const request = http.get(url, { agent: false, headers: requestHeaders })
    const [response] = await once(request, 'response') as [http.IncomingMessage]
    const chunks = response[Symbol.asyncIterator]()
    status = response.statusCode!
    header = (name) => response.headers[name] as string | undefined
    read = async () => {
      const { value, done } = await chunks.next()
      return done === true ? undefined : value as Buffer
    }
    close = () => request.destroy()
  }
  const decoder = new TextDecoder()
  let buffer = ''

  function parse (block: string): ServerSentEvent | undefined {
    const event: ServerSentEvent = {}
    let data: string | undefined
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue // a comment: the heartbeat
      const colon = line.indexOf(':')
      const field = line.slice(0, colon)
      const value = line.slice(colon + 1).replace(/^ /, '')
      if (field === 'id') event.id = value
      else if (field === 'event') event.event = value
      else if (field === 'data') data = data === undefined ? value : `${data}\n${value}`
    }
    if (data === undefined && event.event === undefined) return undefined
    if (data !== undefined) event.data = JSON.parse(data)
    return event
  }

  return {
    status,
    header,
    /** The next event; fails after `ms`, or if the stream ends first. */
    async next (ms = 5000): Promise<ServerSentEvent> {
      for (;;) {
        const end = buffer.indexOf('\n\n')
        if (end !== -1) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event = parse(block)
          if (event !== undefined) return event
          continue
        }
        const chunk = await within(read(), ms, 'the next event')
        if (chunk === undefined) throw new Error('the stream ended')
        buffer += decoder.decode(chunk, { stream: true })
      }
    },
    /** Resolves when the server ends the stream. */
    async ended (ms = 5000): Promise<void> {
      while (await within(read(), ms, 'the end of the stream') !== undefined);
    },
    close,
  }
}

describe.each(DATABASE_KINDS)('the maintenance event stream on %s', (kind) => {
  let site: TestSite
  let base: string

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer', 'emergency'])
    base = await site.app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(async () => {
    await backToNormal(site.app, ROOT)
    await site.close()
  })

  it('starts with the current public state, then delivers each change with the version as its id', async () => {
    const current = await readState(site.app)
    const stream = await openEvents(`${base}/api/maintenance/events`)
    try {
      expect(stream.status).toBe(200)
      expect(stream.header('content-type')).toMatch(/^text\/event-stream/)
      expect(stream.header('quiesce-mode')).toBe('normal')
      expect(await stream.next()).toEqual({ id: String(current.version), event: 'state', data: current })

      const switched = await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      // A visitor's stream: the maintainer's name is not for them.
      expect(await stream.next()).toEqual({ id: String(switched.version), event: 'state', data: { ...switched, maintainer: null } })

      const back = await switchTo(site.app, BOSS, 'normal')
      expect(await stream.next()).toEqual({ id: String(back.version), event: 'state', data: { ...back, maintainer: null } })
    } finally {
      stream.close()
    }
  })

  it('shows the maintainer on a manager\'s stream', async () => {
    const stream = await openEvents(`${base}/api/maintenance/events`, { authorization: BOSS })
    try {
      expect((await stream.next()).data).toMatchObject({ mode: 'normal', maintainer: null })
      const switched = await switchTo(site.app, BOSS, 'exclusive', { reason: 'Backup' })
      expect(await stream.next()).toEqual({ id: String(switched.version), event: 'state', data: switched })
      expect(switched.maintainer).toBe('boss')
    } finally {
      stream.close()
      await backToNormal(site.app, BOSS)
    }
  })

  it('is open to a visitor in exclusive mode, who learns when the site is back', async () => {
    const closed = await switchTo(site.app, BOSS, 'exclusive', { reason: 'Moving' })
    const stream = await openEvents(`${base}/api/maintenance/events`)
    try {
      expect(stream.status).toBe(200)
      expect(stream.header('quiesce-mode')).toBe('exclusive')
      expect(await stream.next()).toEqual({ id: String(closed.version), event: 'state', data: { ...closed, maintainer: null } })
      // The rest of the site is closed to the same visitor meanwhile.
      expect((await fetch(`${base}/`)).status).toBe(503)

      const open = await switchTo(site.app, BOSS, 'normal')
      expect(await stream.next()).toEqual({ id: String(open.version), event: 'state', data: { ...open, maintainer: null } })
    } finally {
      stream.close()
    }
  })

  it('has no HEAD route: a HEAD answer is not sent before it ends, and a stream never ends', async () => {
    const answered = new Promise<number>((resolve, reject) => {
      const request = http.request(`${base}/api/maintenance/events`, { method: 'HEAD', agent: false }, (response) => {
        resolve(response.statusCode!)
        response.resume()
      })
      request.on('error', reject)
      request.end()
    })
    expect(await within(answered, 5000, 'the answer to HEAD')).toBe(404)
  })

  it('does not count as a request in flight, so an open page does not keep the cluster from being quiet', async () => {
    const stream = await openEvents(`${base}/api/maintenance/events`)
    try {
      await stream.next()
      const switched = await switchTo(site.app, BOSS, 'concurrent')
      await stream.next()
      await expect.poll(async () => {
        const instances = (await site.app.inject({ url: '/api/instances', headers: { authorization: BOSS } })).json()
        return instances.instances[0]
      }, { timeout: 3000, interval: 20 }).toMatchObject({ stateVersion: switched.version, requestsInFlight: 0, writesInFlight: 0 })
    } finally {
      stream.close()
      await backToNormal(site.app, BOSS)
    }
  })
})

describe.each(DATABASE_KINDS)('closing the app with event streams open on %s', (kind) => {
  it('ends every stream, and app.close() does not hang', async () => {
    const site = await startTestSite(kind)
    const base = await site.app.listen({ port: 0, host: '127.0.0.1' })
    const streams = [await openEvents(`${base}/api/maintenance/events`, {}, 'fetch'), await openEvents(`${base}/api/maintenance/events`, {}, 'http')]
    for (const stream of streams) expect((await stream.next()).event).toBe('state')

    const closing = site.close()
    for (const stream of streams) await stream.ended(5000)
    await within(closing, 5000, 'app.close()')
  })
})
