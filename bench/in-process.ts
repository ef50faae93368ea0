/**
 * CPU time per request of several apps built in one process (issue 10, item 1): what req/s
 * across processes cannot resolve on a shared two-core machine. Each app answers `inject()`
 * (light-my-request: Fastify's whole request path without sockets) in small batches, the apps
 * taking turns batch by batch, so a burst of other work, a GC or a JIT pause falls on all of
 * them alike; `process.cpuUsage()` (getrusage, µs) around each batch.
 */
import type { FastifyInstance } from 'fastify'
import { median } from './lib.js'

export interface InProcessApp {
  name: string
  app: FastifyInstance
}

export interface CpuOptions {
  urlPath: string
  /** Requests per batch. */
  batch: number
  /** Batches of each app per round: a round's figure is the median of its batches. */
  batchesPerRound: number
  rounds: number
  /** Requests per app before measuring (the JIT settles). */
  warmup: number
}

/** Per app, the CPU µs per request of each round (the median of the round's batches). */
export async function cpuPerRequest (apps: InProcessApp[], options: CpuOptions): Promise<Map<string, number[]>> {
  for (const { app } of apps) await batch(app, options.urlPath, options.warmup)
  const rounds = new Map(apps.map(({ name }) => [name, [] as number[]]))
  for (let round = 0; round < options.rounds; round++) {
    const batches = new Map(apps.map(({ name }) => [name, [] as number[]]))
    for (let turn = 0; turn < options.batchesPerRound; turn++) {
      // Every app takes every place in the order in turn.
      const shift = turn % apps.length
      for (const { name, app } of [...apps.slice(shift), ...apps.slice(0, shift)]) batches.get(name)!.push(await batch(app, options.urlPath, options.batch))
    }
    for (const [name, values] of batches) rounds.get(name)!.push(median(values))
  }
  return rounds
}

/** CPU µs per request of `count` GETs of `urlPath`; anything but 200 stops the benchmark. */
async function batch (app: FastifyInstance, urlPath: string, count: number): Promise<number> {
  const before = process.cpuUsage()
  for (let i = 0; i < count; i++) {
    const answer = await app.inject({ method: 'GET', url: urlPath })
    if (answer.statusCode !== 200) throw new Error(`GET ${urlPath} answered ${answer.statusCode}`)
  }
  const used = process.cpuUsage(before)
  return (used.user + used.system) / count
}
