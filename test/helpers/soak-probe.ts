/**
 * Loaded into a `quiesce serve` process (`node --expose-gc --import tsx --import
 * test/helpers/soak-probe.ts app/cli/bin.ts serve`, with an IPC channel) so that a soak test
 * can look inside it: on `{ type: 'probe' }` it collects garbage and answers with the heap, the
 * RSS, the active handles by type, open file descriptors and the HTTP server's connections.
 * `{ type: 'plant-leak' }` makes the process keep every request and reply from then on (a
 * planted leak, to show that the soak's assertions catch one).
 */
import { readdirSync } from 'node:fs'
import http from 'node:http'

export interface ProbeAnswer {
  type: 'probe'
  heapUsed: number
  rss: number
  external: number
  /** `process.getActiveResourcesInfo()`, counted by type. */
  resources: Record<string, number>
  fds: number
  connections: number
}

const retained: unknown[] = []
let leaking = false
let server: http.Server | undefined

const emit = http.Server.prototype.emit
http.Server.prototype.emit = function probedEmit (this: http.Server, event: string | symbol, ...args: unknown[]) {
  if (event === 'listening') server = this
  if (leaking && event === 'request') retained.push(args[0], args[1])
  return Reflect.apply(emit, this, [event, ...args]) as boolean
} as typeof emit

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('the soak probe needs node --expose-gc')

async function probe (): Promise<ProbeAnswer> {
  // Twice, with turns of the event loop between, so that weak callbacks and finalizers run.
  for (let i = 0; i < 3; i++) {
    gc!()
    await new Promise((resolve) => setImmediate(resolve))
  }
  const resources: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1
  const connections = await new Promise<number>((resolve) => {
    if (server === undefined) resolve(-1)
    else server.getConnections((err, count) => resolve(err ? -1 : count))
  })
  const memory = process.memoryUsage()
  return { type: 'probe', heapUsed: memory.heapUsed, rss: memory.rss, external: memory.external, resources, fds: readdirSync('/proc/self/fd').length, connections }
}

process.on('message', (message: { type?: string }) => {
  if (message.type === 'probe') {
    probe().then((answer) => process.send!(answer), (err: unknown) => process.send!({ type: 'error', message: String(err) }))
  } else if (message.type === 'plant-leak') {
    leaking = true
    process.send!({ type: 'planted', retained: retained.length })
  }
})
// The channel must not keep the server alive once it closes.
process.channel?.unref()
