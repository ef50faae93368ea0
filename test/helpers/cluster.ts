import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { TestDatabase } from './databases.js'

export const ROOT = path.resolve(import.meta.dirname, '../..')
const BIN = path.join(ROOT, 'app/cli/bin.ts')
const CHAOS_FAULTS = path.join(ROOT, 'test/helpers/chaos-faults.ts')
const SESSION_SECRET = 'a cluster test secret shared by every instance of the site'

/** One `quiesce serve` process of a test cluster. */
export interface Instance {
  id: string
  url: string
  child: ChildProcess
  /** What it printed (stdout and stderr), the last 500 lines. */
  output: string[]
  /** JSON log lines at level error or fatal (pino levels 50, 60) it printed while serving. */
  errors: string[]
  /** CPU time the process has used so far (user + system, Linux /proc), seconds. */
  cpuSeconds (): number
  stop (): Promise<void>
}

export interface InstanceOptions {
  /** A fault planted by test/helpers/chaos-faults.ts (CHAOS_FAULT), to show that a check catches it. */
  fault?: string
  /** Node options (`--expose-gc`). */
  nodeArgs?: string[]
  /** Modules loaded before the app (`--import`, after tsx). */
  preload?: string[]
  env?: Record<string, string>
  /** An IPC channel to the child (for a probe module that answers messages). */
  ipc?: boolean
}

/** User + system CPU time of a process, in seconds (NaN without /proc). */
export function cpuSecondsOf (pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return Number.NaN
  }
}

/** The site's environment for `quiesce serve` on `testDatabase`, without a developer's own QUIESCE_* settings. */
export function instanceEnv (testDatabase: TestDatabase, id: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('QUIESCE_') && key !== 'CHAOS_FAULT') env[key] = value
  return {
    ...env,
    HOST: '127.0.0.1',
    PORT: '0',
    QUIESCE_DATA_DIR: testDatabase.dataDir,
    QUIESCE_DATABASE_URL: testDatabase.url.kind === 'sqlite' ? `sqlite:${testDatabase.url.file}` : testDatabase.url.url,
    QUIESCE_SESSION_SECRET: SESSION_SECRET,
    QUIESCE_INSTANCE_ID: id,
    QUIESCE_LOG_LEVEL: 'warn',
  }
}

/**
 * Starts `node --import tsx app/cli/bin.ts serve` (what a cluster runs, from the sources) as
 * instance `id` on its own port, and resolves once it serves. The site must exist already
 * (migrated, with a manager): several instances then start side by side safely.
 */
export async function startInstance (testDatabase: TestDatabase, id: string, options: InstanceOptions = {}): Promise<Instance> {
  const preload = [...(options.fault === undefined ? [] : [CHAOS_FAULTS]), ...(options.preload ?? [])].flatMap((file) => ['--import', file])
  const env = { ...instanceEnv(testDatabase, id), ...options.env, ...(options.fault === undefined ? {} : { CHAOS_FAULT: options.fault }) }
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', ...preload, BIN, 'serve'], {
    cwd: ROOT,
    env,
    stdio: options.ipc === true ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  })
  const instance: Instance = {
    id,
    url: '',
    child,
    output: [],
    errors: [],
    cpuSeconds: () => cpuSecondsOf(child.pid),
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    },
  }
  return await new Promise<Instance>((resolve, reject) => {
    const timer = setTimeout(() => fail('did not start within 60 s'), 60_000)
    function fail (why: string): void {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`instance ${id}: ${why}\n${instance.output.slice(-30).join('\n')}`))
    }
    function onLine (line: string): void {
      instance.output.push(line)
      if (instance.output.length > 500) instance.output.shift()
      if (instance.url === '') {
        const match = /Quiesce is serving (http:\/\/\S+)/.exec(line)
        if (match !== null) {
          instance.url = match[1]!
          clearTimeout(timer)
          resolve(instance)
        }
        return
      }
      if (line.startsWith('{') && /"level":(50|60)\b/.test(line)) instance.errors.push(line)
    }
    for (const stream of [child.stdout!, child.stderr!]) {
      let pending = ''
      stream.setEncoding('utf8')
      stream.on('data', (chunk: string) => {
        pending += chunk
        const lines = pending.split('\n')
        pending = lines.pop()!
        for (const line of lines) onLine(line)
      })
    }
    child.once('exit', (code, signal) => {
      if (instance.url === '') fail(`exited (${code ?? signal}) before serving`)
    })
  })
}
