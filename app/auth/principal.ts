import type { Role } from '../db/schema.js'
import type { MaintenancePrincipal } from '../maintenance/state.js'

/**
 * Who is making a request: a user from the users table, or the emergency user from the
 * access file. Anonymous visitors have no principal (null).
 */
export interface Principal {
  name: string
  role: Role | 'emergency'
}

export function isManager (principal: Principal | null): boolean {
  return principal?.role === 'manager' || principal?.role === 'emergency'
}

/** The principal as the maintenance rules see it. */
export function toMaintenancePrincipal (principal: Principal | null): MaintenancePrincipal | null {
  if (principal === null) return null
  return { name: principal.name, canManage: isManager(principal), isEmergency: principal.role === 'emergency' }
}
