import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'

const ROOT = path.resolve(import.meta.dirname, '../..')
const BIN = path.join(ROOT, 'app/cli/bin.ts')

/**
 * `quiesce serve` in a child process of its own, run from the sources (tsx), so that it can be
 * killed for real: `kill -9` leaves no chance to close anything, as a crash or an OOM kill.
 */
export class ServerProcess {
  readonly name: string
  readonly env: Record<string, string>
  url = ''
  /** The last lines it printed (stdout and stderr). */
  readonly output: string[] = []
  #child: ChildProcess | undefined

  constructor (name: string, env: Record<string, string>) {
    this.name = name
    this.env = env
  }

  get running (): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
  }

  /** Running and listening: where a load balancer would send requests. */
  get listening (): boolean {
    return this.running && this.url !== ''
  }

  /** Starts it and resolves once it listens (on a new port each time: PORT=0). */
  async start (): Promise<void> {
    this.url = ''
    const env: NodeJS.ProcessEnv = {}
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('QUIESCE_')) env[key] = value
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, 'serve'], {
      cwd: ROOT,
      env: { ...env, HOST: '127.0.0.1', PORT: '0', QUIESCE_LOG_LEVEL: 'warn', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.#child = child
    live.add(child)
    child.once('exit', () => live.delete(child))
    this.url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error('did not listen within 60 s')), 60_000)
      const fail = (err: Error) => {
        clearTimeout(timer)
        child.kill('SIGKILL')
        reject(new Error(`${this.name}: ${err.message}\n${this.output.slice(-30).join('\n')}`))
      }
      const onExit = (code: number | null, signal: string | null) => fail(new Error(`exited (${code ?? signal}) before listening`))
      child.once('exit', onExit)
      for (const stream of [child.stdout!, child.stderr!]) {
        let pending = ''
        stream.setEncoding('utf8')
        stream.on('data', (chunk: string) => {
          pending += chunk
          const lines = pending.split('\n')
          pending = lines.pop()!
          for (const line of lines) {
            this.output.push(line)
            if (this.output.length > 300) this.output.shift()
            const match = /^Quiesce is serving (http:\/\/\S+)/.exec(line)
            if (match !== null) {
              clearTimeout(timer)
              child.off('exit', onExit)
              resolve(match[1]!)
            }
          }
        })
      }
    })
  }

  /** SIGKILL, and wait until it is gone. */
  async kill9 (): Promise<void> {
    await this.#end('SIGKILL')
  }

  /** SIGTERM: a graceful close. */
  async stop (): Promise<void> {
    await this.#end('SIGTERM')
  }

  /** The JSON log lines it printed at `level` or above (pino: 40 warn, 50 error). */
  logLines (level: number): Array<Record<string, unknown>> {
    return this.output.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => Number(entry.level) >= level)
  }

  async #end (signal: NodeJS.Signals): Promise<void> {
    const child = this.#child
    if (child === undefined || !this.running) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  }
}

const live = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})
