/**
 * Summarises a V8 .cpuprofile (from `BENCH_CPU_PROF=DIR npm run bench`) by where the time goes:
 * self time per package or app file, and the share of busy samples whose stack passes through
 * each package, app file or function (inclusive time).
 *
 * usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP=25] [REQUESTS]
 * With REQUESTS (how many the server answered while profiled) it also shows µs per request.
 */
import { readFileSync } from 'node:fs'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

const [file, topArg = '25', requestsArg] = process.argv.slice(2)
if (file === undefined) {
  console.error('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP] [REQUESTS]')
  process.exit(2)
}
const top = Number(topArg)
const requests = requestsArg === undefined ? undefined : Number(requestsArg)
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

/** Where a frame's code lives: an npm package, a file of the app, a Node internal, or a V8 pseudo-frame. */
function place (frame: CallFrame): string {
  const { url, functionName } = frame
  if (url === '') return functionName.startsWith('(') ? functionName : `(native) ${functionName || 'anonymous'}`
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1]!
  const app = /\/(?:dist\/)?(app\/.+?)\.[jt]s$/.exec(url)
  if (app !== null) return app[1]!
  const bench = /\/(bench\/.+?)\.[jt]s$/.exec(url)
  if (bench !== null) return bench[1]!
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[1] ?? url.slice(5)}`
  return url
}
const fn = (frame: CallFrame): string => `${frame.functionName || '(anonymous)'} ${place(frame)}:${frame.lineNumber + 1}`

const self = new Map<string, number>()
const selfFn = new Map<string, number>()
const inclusivePlace = new Map<string, number>()
const inclusiveFn = new Map<string, number>()
let total = 0
let idle = 0
const add = (map: Map<string, number>, key: string, value: number) => map.set(key, (map.get(key) ?? 0) + value)

for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0
  const leaf = byId.get(profile.samples[i]!)!
  total += dt
  if (leaf.callFrame.functionName === '(idle)') {
    idle += dt
    continue
  }
  add(self, place(leaf.callFrame), dt)
  add(selfFn, fn(leaf.callFrame), dt)
  const places = new Set<string>()
  const fns = new Set<string>()
  for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
    const frame = byId.get(id)!.callFrame
    if (frame.functionName === '(root)') continue
    places.add(place(frame))
    fns.add(fn(frame))
  }
  for (const p of places) add(inclusivePlace, p, dt)
  for (const f of fns) add(inclusiveFn, f, dt)
}

const busy = total - idle
const pct = (value: number) => `${((100 * value) / busy).toFixed(1).padStart(5)} %${requests === undefined ? '' : `  ${(value / requests).toFixed(1).padStart(6)} µs/req`}`
const show = (title: string, map: Map<string, number>, limit: number) => {
  console.log(`\n${title}`)
  for (const [key, value] of [...map].sort((a, b) => b[1] - a[1]).slice(0, limit)) console.log(`  ${pct(value)}  ${key}`)
}

console.log(`${file}: ${(total / 1e6).toFixed(1)} s profiled, busy ${(busy / 1e6).toFixed(1)} s (${((100 * busy) / total).toFixed(0)} %)${requests === undefined ? '' : `, ${(busy / requests).toFixed(1)} µs busy per request`}; percentages are of busy time`)
show('self time by place', self, top)
show('self time by function', selfFn, top)
show('inclusive time by place (stack passes through it)', inclusivePlace, top)
show('inclusive time by function', inclusiveFn, top * 2)
