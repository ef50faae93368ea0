/** The three modes, and the state that every instance of a site shares. */
export const MODES = ['normal', 'concurrent', 'exclusive'] as const
export type Mode = typeof MODES[number]

export const MODE_LABELS: Record<Mode, string> = {
  normal: 'Normal',
  concurrent: 'Concurrent (read-only)',
  exclusive: 'Exclusive',
}

export function isMode (value: unknown): value is Mode {
  return typeof value === 'string' && (MODES as readonly string[]).includes(value)
}

export interface MaintenanceState {
  mode: Mode
  /** Who switched away from normal (or took over); null in normal mode. */
  maintainer: string | null
  reason: string | null
  /** ISO-8601: when the current mode began. */
  since: string
  /** ISO-8601: the expected end, if known. */
  until: string | null
  version: number
  changedBy: string | null
  changedAt: string
}

/** Who is asking, as the maintenance rules see them. */
export interface MaintenancePrincipal {
  name: string
  /** A manager (or the emergency user): may switch the site away from normal. */
  canManage: boolean
  /** The emergency user from the access file: may always do everything. */
  isEmergency: boolean
}

export type Channel = 'web' | 'api' | 'cli' | 'scheduler'

export interface ChangeRequest {
  mode: Mode
  reason: string | null
  until: string | null
  expectedVersion: number
}

/** A value that is a {@link MaintenancePrincipal} (the `identify` option's default accepts nothing else). */
export function isMaintenancePrincipal (value: unknown): value is MaintenancePrincipal {
  return typeof value === 'object' && value !== null &&
    'name' in value && typeof value.name === 'string' &&
    'canManage' in value && typeof value.canManage === 'boolean' &&
    'isEmergency' in value && typeof value.isEmergency === 'boolean'
}

/**
 * Managers and the emergency user: they may change the state and schedule windows, and they
 * see who the maintainer is, the audit log and the instances.
 */
export function mayManage (principal: MaintenancePrincipal | null): boolean {
  return principal !== null && (principal.canManage || principal.isEmergency)
}

/** Maintainer and emergency user do everything in every mode; everyone else writes only in normal. */
export function mayWrite (state: MaintenanceState, principal: MaintenancePrincipal | null): boolean {
  return state.mode === 'normal' || bypasses(state, principal)
}

/** Gets past the exclusive gate and the commit guard. */
export function bypasses (state: MaintenanceState, principal: MaintenancePrincipal | null): boolean {
  if (principal === null) return false
  return principal.isEmergency || (state.maintainer !== null && principal.name === state.maintainer)
}

export type ChangeDecision =
  | { outcome: 'applied', state: MaintenanceState, takeoverFrom: string | null }
  | { outcome: 'refused', reason: 'not-manager' | 'not-maintainer' | 'version-conflict' | 'invalid', detail: string }

export const MAX_REASON_LENGTH = 500
/** Versions are PostgreSQL `integer`s. */
export const MAX_VERSION = 2_147_483_647
// Matching control characters is the point here.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS_GLOBAL = /[\u0000-\u001f\u007f]/g

/** A change as submitted (a JSON body, a form, the command line): anything in it may be missing or wrong. */
export interface ChangeRequestInput {
  mode?: unknown
  reason?: unknown
  until?: unknown
  expectedVersion?: unknown
}

/**
 * Reads a submitted change. `request` is what the rules judge and the audit log stores, made
 * storable whatever was sent (text without control characters, a version the database can
 * hold, 0 for none); `problem` says what was wrong with the input, if anything, so that a
 * malformed attempt is refused and still logged.
 */
export function readChangeRequest (input: ChangeRequestInput): { request: ChangeRequest, problem: string | undefined } {
  const { mode, reason, until, expectedVersion } = input
  const problem = typeof mode !== 'string'
    ? 'mode must be normal, concurrent or exclusive'
    : !isVersion(expectedVersion)
        ? `expectedVersion must be a whole number from 1 to ${MAX_VERSION} (the version the change is based on)`
        : !isOptionalText(reason)
            ? 'the reason must be text'
            : !isOptionalText(until)
                ? 'the expected end must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z'
                : hasControlCharacters(reason ?? '') || hasControlCharacters(mode)
                  ? CONTROL_CHARACTERS_PROBLEM
                  : undefined
  const trimmed = typeof reason === 'string' && reason.trim() !== '' ? storable(reason.trim(), MAX_REASON_LENGTH + 1) : null
  return {
    request: {
      mode: storable(typeof mode === 'string' ? mode : String(mode ?? ''), 32) as Mode,
      reason: trimmed,
      until: typeof until === 'string' ? normalizeUntil(storable(until, 64)) : null,
      expectedVersion: isVersion(expectedVersion) ? expectedVersion : 0,
    },
    problem,
  }
}

export const CONTROL_CHARACTERS_PROBLEM = 'the reason must not contain control characters (such as line breaks or NUL)'

/** One-line text (a reason, a mode) must not hold control characters; PostgreSQL cannot even store NUL. */
export function hasControlCharacters (text: string): boolean {
  return CONTROL_CHARACTERS.test(text)
}

function isVersion (value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_VERSION
}

function isOptionalText (value: unknown): value is string | null | undefined {
  return value === undefined || value === null || typeof value === 'string'
}

/** Text the audit log can hold on both databases: control characters shown as U+FFFD, and a bounded length. */
function storable (text: string, maxLength: number): string {
  const clean = text.replace(CONTROL_CHARACTERS_GLOBAL, '\ufffd')
  return clean.length > maxLength ? clean.slice(0, maxLength) : clean
}

/**
 * The rules of PRODUCT §2.1, as a pure function: who may change the state, and what it becomes.
 * `now` is an ISO-8601 timestamp.
 */
export function decideChange (current: MaintenanceState, change: ChangeRequest, principal: MaintenancePrincipal, now: string): ChangeDecision {
  if (!mayManage(principal)) {
    return { outcome: 'refused', reason: 'not-manager', detail: `${principal.name} is not a manager` }
  }
  if (current.mode !== 'normal' && !bypasses(current, principal)) {
    return { outcome: 'refused', reason: 'not-maintainer', detail: `the maintainer is ${current.maintainer}` }
  }
  if (change.expectedVersion !== current.version) {
    return { outcome: 'refused', reason: 'version-conflict', detail: `based on version ${change.expectedVersion}, but it is at ${current.version}` }
  }
  const invalid = invalidChange(current, change, now)
  if (invalid !== undefined) return { outcome: 'refused', reason: 'invalid', detail: invalid }

  const leavingNormal = current.mode === 'normal'
  const takeoverFrom = !leavingNormal && current.maintainer !== principal.name ? current.maintainer : null
  const toNormal = change.mode === 'normal'
  return {
    outcome: 'applied',
    takeoverFrom,
    state: {
      mode: change.mode,
      maintainer: toNormal ? null : principal.name,
      reason: toNormal ? null : change.reason,
      since: change.mode === current.mode ? current.since : now,
      until: toNormal ? null : change.until,
      version: current.version + 1,
      changedBy: principal.name,
      changedAt: now,
    },
  }
}

function invalidChange (current: MaintenanceState, change: ChangeRequest, now: string): string | undefined {
  if (!isMode(change.mode)) return 'mode must be normal, concurrent or exclusive'
  if (change.mode === 'normal' && current.mode === 'normal') return 'the site is already in normal mode'
  if (change.reason !== null && change.reason.length > MAX_REASON_LENGTH) return `the reason must be at most ${MAX_REASON_LENGTH} characters`
  if (change.until !== null && change.mode !== 'normal') {
    if (!isIsoTimestamp(change.until)) return 'the expected end must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z'
    if (Date.parse(change.until) <= Date.parse(now)) return 'the expected end must be in the future'
  }
  return undefined
}

/** A full ISO-8601 date-time with a time zone; normalised to UTC by {@link normalizeUntil}. */
export function isIsoTimestamp (value: string): boolean {
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(value) && !Number.isNaN(Date.parse(value))
}

/** Stored timestamps are UTC `toISOString()` strings, so they compare as text. */
export function normalizeUntil (value: string | null | undefined): string | null {
  if (value === undefined || value === null || value.trim() === '') return null
  const trimmed = value.trim()
  return isIsoTimestamp(trimmed) ? new Date(trimmed).toISOString() : trimmed
}

/** Seconds until the expected end, or the default when no (future) end is known. */
export function retryAfterSeconds (state: MaintenanceState, defaultSeconds: number, now = Date.now()): number {
  if (state.until === null) return defaultSeconds
  const seconds = Math.ceil((Date.parse(state.until) - now) / 1000)
  return seconds > 0 ? seconds : defaultSeconds
}

/** What `GET /api/maintenance` answers; the maintainer's name only for managers. */
export function publicState (state: MaintenanceState, viewer: MaintenancePrincipal | null) {
  return {
    mode: state.mode,
    version: state.version,
    since: state.since,
    reason: state.reason,
    until: state.until,
    maintainer: mayManage(viewer) ? state.maintainer : null,
  }
}
export type PublicState = ReturnType<typeof publicState>
