import { describe, expect, it } from 'vitest'
import {
  bypasses,
  decideChange,
  isIsoTimestamp,
  MAX_REASON_LENGTH,
  mayWrite,
  normalizeUntil,
  publicState,
  retryAfterSeconds,
  type ChangeRequest,
  type MaintenancePrincipal,
  type MaintenanceState,
} from '../app/maintenance/state.js'

const NOW = '2026-11-22T12:00:00.000Z'
const EARLIER = '2026-11-22T09:30:00.000Z'
const SETUP = '2026-11-01T08:00:00.000Z'
const IN_AN_HOUR = '2026-11-22T13:00:00.000Z'

const boss: MaintenancePrincipal = { name: 'boss', canManage: true, isEmergency: false }
const deputy: MaintenancePrincipal = { name: 'deputy', canManage: true, isEmergency: false }
const ann: MaintenancePrincipal = { name: 'ann', canManage: false, isEmergency: false }
const root: MaintenancePrincipal = { name: 'root', canManage: false, isEmergency: true }

const normal: MaintenanceState = {
  mode: 'normal',
  maintainer: null,
  reason: null,
  since: SETUP,
  until: null,
  version: 4,
  changedBy: 'boss',
  changedAt: SETUP,
}

/** boss switched to concurrent at EARLIER, expecting to be done in an hour from NOW. */
const concurrentByBoss: MaintenanceState = {
  mode: 'concurrent',
  maintainer: 'boss',
  reason: 'Reindexing the catalog',
  since: EARLIER,
  until: IN_AN_HOUR,
  version: 5,
  changedBy: 'boss',
  changedAt: EARLIER,
}

function change (overrides: Partial<ChangeRequest> & { expectedVersion: number }): ChangeRequest {
  return { mode: 'concurrent', reason: null, until: null, ...overrides }
}

describe('decideChange: who may change the state (PRODUCT §2.1)', () => {
  it('refuses a member, whatever the mode', () => {
    expect(decideChange(normal, change({ expectedVersion: 4 }), ann, NOW))
      .toEqual({ outcome: 'refused', reason: 'not-manager', detail: 'ann is not a manager' })
    expect(decideChange(concurrentByBoss, change({ mode: 'normal', expectedVersion: 5 }), ann, NOW))
      .toEqual({ outcome: 'refused', reason: 'not-manager', detail: 'ann is not a manager' })
  })

  it('lets any manager switch away from normal; the one who switches becomes the maintainer and since is now', () => {
    const decision = decideChange(normal, change({ mode: 'exclusive', reason: 'Backup', until: IN_AN_HOUR, expectedVersion: 4 }), deputy, NOW)
    expect(decision).toEqual({
      outcome: 'applied',
      takeoverFrom: null,
      state: {
        mode: 'exclusive',
        maintainer: 'deputy',
        reason: 'Backup',
        since: NOW,
        until: IN_AN_HOUR,
        version: 5,
        changedBy: 'deputy',
        changedAt: NOW,
      },
    })
  })

  it('refuses another manager while the site is not normal, naming the maintainer', () => {
    for (const mode of ['normal', 'concurrent', 'exclusive'] as const) {
      expect(decideChange(concurrentByBoss, change({ mode, expectedVersion: 5 }), deputy, NOW))
        .toEqual({ outcome: 'refused', reason: 'not-maintainer', detail: 'the maintainer is boss' })
    }
    const exclusiveByBoss: MaintenanceState = { ...concurrentByBoss, mode: 'exclusive' }
    expect(decideChange(exclusiveByBoss, change({ mode: 'normal', expectedVersion: 5 }), deputy, NOW))
      .toEqual({ outcome: 'refused', reason: 'not-maintainer', detail: 'the maintainer is boss' })
  })

  it('judges who asks before the version: a non-maintainer with a stale version hears about the maintainer', () => {
    expect(decideChange(concurrentByBoss, change({ expectedVersion: 1 }), deputy, NOW))
      .toEqual({ outcome: 'refused', reason: 'not-maintainer', detail: 'the maintainer is boss' })
  })

  it('lets the maintainer change reason and expected end without moving since', () => {
    const decision = decideChange(concurrentByBoss, change({ mode: 'concurrent', reason: 'Still reindexing', until: '2026-11-22T15:00:00.000Z', expectedVersion: 5 }), boss, NOW)
    expect(decision).toEqual({
      outcome: 'applied',
      takeoverFrom: null,
      state: {
        mode: 'concurrent',
        maintainer: 'boss',
        reason: 'Still reindexing',
        since: EARLIER,
        until: '2026-11-22T15:00:00.000Z',
        version: 6,
        changedBy: 'boss',
        changedAt: NOW,
      },
    })
  })

  it('lets the maintainer change the mode; since becomes now', () => {
    const decision = decideChange(concurrentByBoss, change({ mode: 'exclusive', reason: 'Reindexing the catalog', until: IN_AN_HOUR, expectedVersion: 5 }), boss, NOW)
    expect(decision).toMatchObject({ outcome: 'applied', takeoverFrom: null, state: { mode: 'exclusive', maintainer: 'boss', since: NOW, version: 6 } })
  })

  it('back to normal clears maintainer, reason and expected end', () => {
    const decision = decideChange(concurrentByBoss, change({ mode: 'normal', reason: 'ignored', until: '2026-11-23T00:00:00.000Z', expectedVersion: 5 }), boss, NOW)
    expect(decision).toEqual({
      outcome: 'applied',
      takeoverFrom: null,
      state: { mode: 'normal', maintainer: null, reason: null, since: NOW, until: null, version: 6, changedBy: 'boss', changedAt: NOW },
    })
  })

  it('back to normal does not judge the expected end it is about to clear', () => {
    const decision = decideChange(concurrentByBoss, change({ mode: 'normal', until: 'not a date', expectedVersion: 5 }), boss, NOW)
    expect(decision).toMatchObject({ outcome: 'applied', state: { mode: 'normal', until: null } })
  })

  it('the emergency user takes over from the maintainer and becomes the maintainer', () => {
    const decision = decideChange(concurrentByBoss, change({ mode: 'concurrent', reason: 'Taking over', expectedVersion: 5 }), root, NOW)
    expect(decision).toEqual({
      outcome: 'applied',
      takeoverFrom: 'boss',
      state: {
        mode: 'concurrent',
        maintainer: 'root',
        reason: 'Taking over',
        since: EARLIER,
        until: null,
        version: 6,
        changedBy: 'root',
        changedAt: NOW,
      },
    })
  })

  it('the emergency user may switch from normal like a manager; that is no take-over', () => {
    expect(decideChange(normal, change({ mode: 'exclusive', expectedVersion: 4 }), root, NOW))
      .toMatchObject({ outcome: 'applied', takeoverFrom: null, state: { mode: 'exclusive', maintainer: 'root', since: NOW } })
  })

  it('the emergency user who already is the maintainer takes over from nobody', () => {
    const byRoot: MaintenanceState = { ...concurrentByBoss, maintainer: 'root' }
    expect(decideChange(byRoot, change({ mode: 'exclusive', expectedVersion: 5 }), root, NOW))
      .toMatchObject({ outcome: 'applied', takeoverFrom: null, state: { maintainer: 'root' } })
  })

  it('refuses a change based on another version, for the maintainer and the emergency user too', () => {
    expect(decideChange(concurrentByBoss, change({ expectedVersion: 4 }), boss, NOW))
      .toEqual({ outcome: 'refused', reason: 'version-conflict', detail: 'based on version 4, but it is at 5' })
    expect(decideChange(concurrentByBoss, change({ expectedVersion: 6 }), root, NOW))
      .toEqual({ outcome: 'refused', reason: 'version-conflict', detail: 'based on version 6, but it is at 5' })
    expect(decideChange(normal, change({ expectedVersion: 3 }), deputy, NOW))
      .toEqual({ outcome: 'refused', reason: 'version-conflict', detail: 'based on version 3, but it is at 4' })
  })
})

describe('decideChange: what a change may be', () => {
  const invalid = (detail: string) => ({ outcome: 'refused', reason: 'invalid', detail })

  it('refuses normal to normal', () => {
    expect(decideChange(normal, change({ mode: 'normal', expectedVersion: 4 }), boss, NOW))
      .toEqual(invalid('the site is already in normal mode'))
  })

  it('refuses a mode that does not exist', () => {
    expect(decideChange(normal, change({ mode: 'closed' as ChangeRequest['mode'], expectedVersion: 4 }), boss, NOW))
      .toEqual(invalid('mode must be normal, concurrent or exclusive'))
  })

  it('takes a reason of up to 500 characters and refuses a longer one', () => {
    expect(MAX_REASON_LENGTH).toBe(500)
    expect(decideChange(normal, change({ reason: 'r'.repeat(500), expectedVersion: 4 }), boss, NOW))
      .toMatchObject({ outcome: 'applied', state: { reason: 'r'.repeat(500) } })
    expect(decideChange(normal, change({ reason: 'r'.repeat(501), expectedVersion: 4 }), boss, NOW))
      .toEqual(invalid('the reason must be at most 500 characters'))
  })

  it('refuses an expected end that is not an ISO-8601 date and time with a zone', () => {
    for (const until of ['tomorrow', '2026-11-23', '2026-11-23T14:00', '23/11/2026 14:00Z', '2026-13-40T14:00:00Z']) {
      expect(decideChange(normal, change({ until, expectedVersion: 4 }), boss, NOW), until)
        .toEqual(invalid('the expected end must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z'))
    }
  })

  it('refuses an expected end in the past or right now', () => {
    for (const until of ['2026-11-22T11:59:59.999Z', NOW, '2025-01-01T00:00:00.000Z']) {
      expect(decideChange(normal, change({ until, expectedVersion: 4 }), boss, NOW), until)
        .toEqual(invalid('the expected end must be in the future'))
    }
    expect(decideChange(normal, change({ until: '2026-11-22T12:00:00.001Z', expectedVersion: 4 }), boss, NOW))
      .toMatchObject({ outcome: 'applied', state: { until: '2026-11-22T12:00:00.001Z' } })
  })

  it('checks the version before the content: a stale, invalid change is a conflict', () => {
    expect(decideChange(normal, change({ mode: 'normal', expectedVersion: 3 }), boss, NOW))
      .toEqual({ outcome: 'refused', reason: 'version-conflict', detail: 'based on version 3, but it is at 4' })
  })
})

describe('mayWrite and bypasses', () => {
  const everyone = [null, ann, deputy, boss, root]

  it('in normal mode everyone writes; only the emergency user bypasses', () => {
    expect(everyone.map((principal) => mayWrite(normal, principal))).toEqual([true, true, true, true, true])
    expect(everyone.map((principal) => bypasses(normal, principal))).toEqual([false, false, false, false, true])
  })

  it('in concurrent and exclusive mode only the maintainer and the emergency user write and bypass', () => {
    for (const state of [concurrentByBoss, { ...concurrentByBoss, mode: 'exclusive' as const }]) {
      expect(everyone.map((principal) => mayWrite(state, principal))).toEqual([false, false, false, true, true])
      expect(everyone.map((principal) => bypasses(state, principal))).toEqual([false, false, false, true, true])
    }
  })
})

describe('retryAfterSeconds', () => {
  const now = Date.parse(NOW)

  it('counts whole seconds up to a future expected end, rounding up', () => {
    expect(retryAfterSeconds(concurrentByBoss, 300, now)).toBe(3600)
    expect(retryAfterSeconds({ ...concurrentByBoss, until: '2026-11-22T12:01:30.500Z' }, 300, now)).toBe(91)
    expect(retryAfterSeconds({ ...concurrentByBoss, until: '2026-11-22T12:00:00.001Z' }, 300, now)).toBe(1)
  })

  it('falls back to the default without an expected end, or once it has passed', () => {
    expect(retryAfterSeconds({ ...concurrentByBoss, until: null }, 300, now)).toBe(300)
    expect(retryAfterSeconds({ ...concurrentByBoss, until: null }, 42, now)).toBe(42)
    expect(retryAfterSeconds({ ...concurrentByBoss, until: NOW }, 300, now)).toBe(300)
    expect(retryAfterSeconds({ ...concurrentByBoss, until: EARLIER }, 300, now)).toBe(300)
  })
})

describe('normalizeUntil and isIsoTimestamp', () => {
  it('treats nothing, null and blank as no expected end', () => {
    expect(normalizeUntil(undefined)).toBeNull()
    expect(normalizeUntil(null)).toBeNull()
    expect(normalizeUntil('')).toBeNull()
    expect(normalizeUntil('   ')).toBeNull()
  })

  it('stores a valid time as a UTC toISOString() string, so stored times compare as text', () => {
    expect(normalizeUntil('2026-11-22T14:00:00Z')).toBe('2026-11-22T14:00:00.000Z')
    expect(normalizeUntil(' 2026-11-22T14:00Z ')).toBe('2026-11-22T14:00:00.000Z')
    expect(normalizeUntil('2026-11-22T16:30:00+02:00')).toBe('2026-11-22T14:30:00.000Z')
    expect(normalizeUntil('2026-11-22T23:30:00.5-03:00')).toBe('2026-11-23T02:30:00.500Z')
  })

  it('leaves anything else as typed (trimmed), for decideChange to refuse with a message', () => {
    expect(normalizeUntil(' next tuesday ')).toBe('next tuesday')
    expect(normalizeUntil('2026-11-22T14:00')).toBe('2026-11-22T14:00')
  })

  it('accepts full date-times with a zone only', () => {
    expect(isIsoTimestamp('2026-11-22T14:00Z')).toBe(true)
    expect(isIsoTimestamp('2026-11-22T14:00:05.123+01:00')).toBe(true)
    expect(isIsoTimestamp('2026-11-22T14:00:05')).toBe(false)
    expect(isIsoTimestamp('2026-11-22')).toBe(false)
    expect(isIsoTimestamp('2026-13-01T14:00:00Z')).toBe(false)
  })
})

describe('publicState', () => {
  const shown = {
    mode: 'concurrent',
    version: 5,
    since: EARLIER,
    reason: 'Reindexing the catalog',
    until: IN_AN_HOUR,
  }

  it('shows the maintainer to managers and the emergency user', () => {
    expect(publicState(concurrentByBoss, deputy)).toEqual({ ...shown, maintainer: 'boss' })
    expect(publicState(concurrentByBoss, root)).toEqual({ ...shown, maintainer: 'boss' })
  })

  it('hides the maintainer from members and visitors, and never shows changedBy', () => {
    expect(publicState(concurrentByBoss, ann)).toEqual({ ...shown, maintainer: null })
    expect(publicState(concurrentByBoss, null)).toEqual({ ...shown, maintainer: null })
  })
})
