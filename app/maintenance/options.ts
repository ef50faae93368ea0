import type { FastifyRequest } from 'fastify'
import type { Expression } from 'kysely'
import type { ChangeSignal } from './change-signals.js'
import { InvalidOptionError } from './errors.js'
import { isMaintenancePrincipal, type MaintenancePrincipal } from './state.js'
import type { MaintenanceStore } from './store.js'

/**
 * The seams of a unit of work that the plugin hooks into (structurally typed, so any
 * implementation fits): two it needs, two it uses when they are there. `principal` is whatever
 * the application's unit of work carries; the `identify` option says who it is.
 */
export interface CommitSeams {
  /** A hook inside the commit transaction, before the writes; a hook that throws vetoes the commit. */
  onBeforeWrites (hook: (context: { transaction: unknown, unitOfWork: { principal: unknown } }) => Promise<void>): void
  /** A hook before each retry of a conflicting request; a hook that throws ends the request. */
  onBeforeRetry (hook: (context: { attempt: number, principal: unknown }) => Promise<void>): void
  /**
   * Optional: a hook before a commit's transaction opens, to refuse cheaply what the guard would
   * refuse. `begunAt`, if the unit of work has it: when it began (performance.now()), so that a
   * read of the state that began since can confirm the refusal instead of a read of its own.
   */
  onBeforeCommit? (hook: (context: { unitOfWork: { principal: unknown, begunAt?: number } }) => Promise<void>): void
  /**
   * Optional: the unit of work records with each commit what `stamp(transaction)` evaluates to
   * (the store's {@link MaintenanceStore.versionStamp}): the state version it was applied under.
   */
  stampCommits? (stamp: (transaction: unknown) => Expression<number>): void
  /**
   * Optional: the unit of work runs `guard.statement` (fixed SQL) as the first statement of each
   * commit transaction, in the BEGIN's round trip where its database allows, and gives its rows
   * to `guard.judge` before the writes, which throws to veto the commit; if that statement
   * fails otherwise than by a lost database it throws `guard.unreadable(error)`. With it (and a
   * store with `stateAtBegin`), the guard costs no round trip of its own.
   */
  guardAtBegin? (guard: BeginGuard): void
}

/** The commit guard as the `guardAtBegin` seam takes it. */
export interface BeginGuard {
  statement: string
  judge (rows: readonly unknown[], context: { unitOfWork: { principal: unknown } }): void
  unreadable (error: unknown): Error
}

export interface MaintenancePluginOptions {
  store: MaintenanceStore
  unitOfWork: CommitSeams
  /** Who makes a request, as the rules see them (null for visitors). Called by the gate. */
  principalOf: (request: FastifyRequest) => MaintenancePrincipal | null
  /** The same for the principal a unit of work carries; by default that is a `MaintenancePrincipal` already. */
  identify?: (principal: unknown) => MaintenancePrincipal | null
  /** Keeps this instance's copy of the state fresh; without one, only commits and retries re-read it. */
  changeSignal?: ChangeSignal
  instanceId: string
  /** `Retry-After` seconds when no expected end is set. */
  retryAfterSeconds?: number
  /** Path prefixes that stay open in exclusive mode besides routes marked `always-open` (static files). */
  alwaysOpenPrefixes?: string[]
  heartbeatMs?: number
  /** How often scheduled windows are checked for a due switch (default 1000 ms; 0: never). */
  scheduleMs?: number
  /** Register the JSON API, the events stream and /healthz (default true). */
  routes?: boolean
  /**
   * Whether the database takes no writes now (a hot standby): the instance then neither
   * registers nor heartbeats nor runs scheduled windows, and /healthz answers `replica`. Asked
   * every time; when it turns false (the standby was promoted) all of that starts by itself.
   */
  standby?: () => boolean
  /**
   * What this instance says about itself in the registry besides its counts (its database, its
   * replicas): a JSON object, asked at each heartbeat and for the control panel's live row.
   */
  describeInstance?: () => Record<string, unknown> | null
  /**
   * Where this instance registers and heartbeats while `standby()` says its own database takes
   * no writes: the primary's store (`kyselyMaintenanceStore(primary)`), so that the primary's
   * control panel lists it. Without one, an instance on a standby registers nowhere.
   */
  registryStore?: Pick<MaintenanceStore, 'heartbeat' | 'removeInstance'>
}

/** The options with every default filled in. */
export type ResolvedOptions = Required<Omit<MaintenancePluginOptions, 'changeSignal' | 'registryStore'>> & Pick<MaintenancePluginOptions, 'changeSignal' | 'registryStore'>

/** The methods a store has: `true` required, `false` optional. */
const STORE_METHODS = {
  read: true,
  readInTransaction: true,
  versionStamp: false,
  stateAtBegin: false,
  change: true,
  switchForWindow: true,
  windows: true,
  scheduleWindow: true,
  cancelWindow: true,
  log: true,
  countLog: true,
  logActors: true,
  heartbeat: true,
  instances: true,
  removeInstance: true,
} satisfies Record<keyof MaintenanceStore, boolean>

/** The unit of work's seams: `true` required, `false` used when present. */
export const COMMIT_SEAMS = {
  onBeforeWrites: true,
  onBeforeRetry: true,
  onBeforeCommit: false,
  stampCommits: false,
  guardAtBegin: false,
} satisfies Record<keyof CommitSeams, boolean>

const REGISTRY_STORE_METHODS = { heartbeat: true, removeInstance: true }

const CHANGE_SIGNAL_METHODS = { start: true, stop: true } satisfies Record<keyof ChangeSignal, boolean>

/** The longest timer Node.js keeps: a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647

/** What Fastify's `register` itself reads from a plugin's options. */
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers'])

/**
 * The `identify` default: the unit of work's principal is a {@link MaintenancePrincipal}, or
 * null (undefined) for a visitor. Anything else is a host that should have passed `identify`.
 */
function samePrincipal (principal: unknown): MaintenancePrincipal | null {
  if (principal === null || principal === undefined) return null
  if (isMaintenancePrincipal(principal)) return principal
  throw new InvalidOptionError(`the unit of work's principal is not { name, canManage, isEmergency } but ${describe(principal)}; pass the option "identify" to say who it is`)
}

const NO_PREFIXES: string[] = []

const DEFAULTS = {
  identify: samePrincipal,
  retryAfterSeconds: 300,
  alwaysOpenPrefixes: NO_PREFIXES,
  heartbeatMs: 2000,
  scheduleMs: 1000,
  routes: true,
  standby: () => false,
  describeInstance: () => null,
}

interface OptionRule {
  /** The type, in TypeScript. */
  type: string
  required: boolean
  /** The README's default column, when the option has a default JSON does not show. */
  shownDefault?: string
  default?: unknown
  description: string
  /** What is wrong with a given value (not undefined), if anything: a phrase after `option "name"`. */
  problem: (value: unknown) => string | undefined
}

/** Every option, its check and its documentation (the README's options table is generated from it). */
export const OPTIONS: Record<keyof MaintenancePluginOptions, OptionRule> = {
  store: {
    type: 'MaintenanceStore',
    required: true,
    description: 'the database: read, read in a transaction (with a share lock), change (with the audit log), log (filtered, counted), windows, heartbeats; `kyselyMaintenanceStore(db)` is built in',
    problem: objectWith('a MaintenanceStore', STORE_METHODS),
  },
  unitOfWork: {
    type: 'CommitSeams',
    required: true,
    description: 'the unit of work\'s seams (see below): `onBeforeWrites` and `onBeforeRetry`, and `onBeforeCommit`, `stampCommits` and `guardAtBegin` when it has them',
    problem: objectWith('the unit of work\'s seams (CommitSeams)', COMMIT_SEAMS),
  },
  principalOf: {
    type: '(request: FastifyRequest) => MaintenancePrincipal | null',
    required: true,
    description: 'who makes the request: `{ name, canManage, isEmergency }` or `null`; called by the gate in exclusive mode only',
    problem: isFunction,
  },
  identify: {
    type: '(principal: unknown) => MaintenancePrincipal | null',
    required: false,
    default: DEFAULTS.identify,
    shownDefault: 'the identity',
    description: 'the same for the principal a unit of work carries; by default it is one already (`null` or `undefined` for a visitor; anything else is refused with `QUIESCE_INVALID_OPTION`)',
    problem: isFunction,
  },
  changeSignal: {
    type: 'ChangeSignal',
    required: false,
    shownDefault: 'none',
    description: 'keeps this instance\'s copy fresh: `postgresNotifications(...)` or `pollingSignal(...)`; without one, only commits, retries and changes made here refresh it',
    problem: objectWith('a ChangeSignal', CHANGE_SIGNAL_METHODS),
  },
  instanceId: {
    type: 'string',
    required: true,
    description: 'this instance\'s name in the registry and the audit log',
    problem: (value) => typeof value === 'string' && value !== '' ? undefined : `must be a non-empty string, not ${describe(value)}`,
  },
  retryAfterSeconds: {
    type: 'number',
    required: false,
    default: DEFAULTS.retryAfterSeconds,
    description: '`Retry-After` seconds when no expected end is set',
    problem: wholeNumber(1, Number.MAX_SAFE_INTEGER, 'seconds'),
  },
  alwaysOpenPrefixes: {
    type: 'string[]',
    required: false,
    default: DEFAULTS.alwaysOpenPrefixes,
    description: 'URL prefixes open in exclusive mode besides routes marked `always-open` (e.g. `[\'/static/\']`)',
    problem: (value) => Array.isArray(value) && value.every((prefix) => typeof prefix === 'string' && prefix !== '') ? undefined : `must be an array of non-empty strings, not ${describe(value)}`,
  },
  heartbeatMs: {
    type: 'number',
    required: false,
    default: DEFAULTS.heartbeatMs,
    description: 'instance heartbeat interval (ms); stale after 3 missed beats, dropped after 60 s',
    problem: wholeNumber(1, MAX_TIMER_MS, 'milliseconds'),
  },
  scheduleMs: {
    type: 'number',
    required: false,
    default: DEFAULTS.scheduleMs,
    description: 'how often scheduled windows are checked for a due switch (ms); `0`: never (call `runSchedule()` yourself)',
    problem: wholeNumber(0, MAX_TIMER_MS, 'milliseconds'),
  },
  routes: {
    type: 'boolean',
    required: false,
    default: DEFAULTS.routes,
    description: 'register the JSON API, the events stream and `/healthz`',
    problem: (value) => typeof value === 'boolean' ? undefined : `must be true or false, not ${describe(value)}`,
  },
  standby: {
    type: '() => boolean',
    required: false,
    default: DEFAULTS.standby,
    shownDefault: 'never',
    description: 'whether the database is a read-only standby now: no scheduled switches, no registration in `store` (the state is read, and a read is the heartbeat; see `registryStore`), `/healthz` says `replica`; asked each time, so a promotion takes effect by itself',
    problem: isFunction,
  },
  describeInstance: {
    type: '() => Record<string, unknown> | null',
    required: false,
    default: DEFAULTS.describeInstance,
    shownDefault: 'nothing',
    description: 'what this instance says about itself in the registry (`details` of `GET /api/instances` and `instances()`): a JSON object, asked at each heartbeat',
    problem: isFunction,
  },
  registryStore: {
    type: 'Pick<MaintenanceStore, \'heartbeat\' | \'removeInstance\'>',
    required: false,
    shownDefault: 'none',
    description: 'where the instance registers while `standby()`: the primary\'s store, so that the primary\'s control panel lists it (its state stays the standby\'s own, replicated); a failed heartbeat there is logged, not unhealthy',
    problem: objectWith('a store with heartbeat() and removeInstance()', REGISTRY_STORE_METHODS),
  },
}

/**
 * Checks the options given to the plugin and fills in the defaults; a wrong one stops the
 * registration with `QUIESCE_INVALID_OPTION` naming it.
 */
export function resolveOptions (options: MaintenancePluginOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError(`the options must be an object, not ${describe(options)}`)
  const given = new Map<string, unknown>(Object.entries(options))
  for (const name of given.keys()) {
    if (!Object.hasOwn(OPTIONS, name) && !REGISTER_OPTIONS.has(name)) throw new InvalidOptionError(`unknown option "${name}"; the options are ${Object.keys(OPTIONS).join(', ')}`)
  }
  for (const [name, rule] of Object.entries(OPTIONS)) {
    const value = given.get(name)
    if (value === undefined) {
      if (rule.required) throw new InvalidOptionError(`option "${name}" is required (${rule.type})`)
      continue
    }
    const problem = rule.problem(value)
    if (problem !== undefined) throw new InvalidOptionError(`option "${name}" ${problem}`)
  }
  return {
    store: options.store,
    unitOfWork: options.unitOfWork,
    principalOf: options.principalOf,
    identify: options.identify ?? DEFAULTS.identify,
    changeSignal: options.changeSignal,
    instanceId: options.instanceId,
    retryAfterSeconds: options.retryAfterSeconds ?? DEFAULTS.retryAfterSeconds,
    alwaysOpenPrefixes: options.alwaysOpenPrefixes ?? DEFAULTS.alwaysOpenPrefixes,
    heartbeatMs: options.heartbeatMs ?? DEFAULTS.heartbeatMs,
    scheduleMs: options.scheduleMs ?? DEFAULTS.scheduleMs,
    routes: options.routes ?? DEFAULTS.routes,
    standby: options.standby ?? DEFAULTS.standby,
    describeInstance: options.describeInstance ?? DEFAULTS.describeInstance,
    registryStore: options.registryStore,
  }
}

function isFunction (value: unknown): string | undefined {
  return typeof value === 'function' ? undefined : `must be a function, not ${describe(value)}`
}

function wholeNumber (min: number, max: number, unit: string): (value: unknown) => string | undefined {
  return (value) => Number.isInteger(value) && typeof value === 'number' && value >= min && value <= max
    ? undefined
    : `must be a whole number of ${unit} from ${min} to ${max}, not ${describe(value)}`
}

/** An object (a class instance too) with the methods `methods` marks required, and functions for those it has. */
function objectWith (what: string, methods: Record<string, boolean>): (value: unknown) => string | undefined {
  return (value) => {
    if (typeof value !== 'object' || value === null) return `must be ${what}, not ${describe(value)}`
    const wrong: string[] = []
    for (const [method, required] of Object.entries(methods)) {
      const member: unknown = Reflect.get(value, method)
      if (typeof member === 'function' || (member === undefined && !required)) continue
      wrong.push(`${method}()`)
    }
    return wrong.length === 0 ? undefined : `must be ${what}: ${wrong.join(', ')} ${wrong.length === 1 ? 'is' : 'are'} missing or not a function`
  }
}

/** A value as an error message names it. */
function describe (value: unknown): string {
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
