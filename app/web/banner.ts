import type { Principal } from '../auth/principal.js'
import { MODE_LABELS, type MaintenanceState, type Mode } from '../maintenance/state.js'

/**
 * "Concurrent (read-only) maintenance": how the banner, the maintenance page and the scheduled
 * window announcements name a mode, always with its one label from {@link MODE_LABELS}.
 */
export function maintenanceName (mode: Mode): string {
  return `${MODE_LABELS[mode]} maintenance`
}

/**
 * The banner's last sentence: what the maintenance means for the person reading the page (a
 * visitor, a member or another manager, the maintainer, the emergency user), in the mode it is in.
 */
export function whatItMeansFor (state: Pick<MaintenanceState, 'mode' | 'maintainer'>, principal: Principal | null, canWrite: boolean): string {
  if (state.mode === 'normal') return ''
  if (canWrite) {
    const who = principal !== null && state.maintainer === principal.name ? 'the maintainer' : 'the emergency user'
    return state.mode === 'exclusive'
      ? `You are ${who}: you can use the site and your changes are saved; it is closed to everyone else.`
      : `You are ${who}: your changes are saved; everyone else can only read.`
  }
  if (state.mode === 'exclusive') return 'The site is closed to everyone except its maintainer and the emergency user.'
  return principal === null
    ? 'You can read and search as usual; nothing can be changed until it ends.'
    : 'You can read and search, but changes cannot be saved until it ends.'
}
