import type { Role } from '../db/schema.js'
import type { MaintenancePrincipal } from '../maintenance/state.js'

/**
 * Who someone is, as a session and the tasks table store it: a user from the users table, or
 * the emergency user from the access file.
 */
export interface Identity {
  name: string
  role: Role | 'emergency'
}

/**
 * Who is making a request, computed once from their identity when the session or the HTTP
 * Basic credentials are resolved, and carried as it is by the unit of work and to the
 * maintenance rules (it is their `MaintenancePrincipal`). Anonymous visitors have none (null).
 */
export interface Principal extends Identity, MaintenancePrincipal {
  /** A manager or the emergency user. */
  canManage: boolean
  /** The emergency user from the access file. */
  isEmergency: boolean
}

export function principalFor (identity: Identity): Principal {
  const isEmergency = identity.role === 'emergency'
  return { name: identity.name, role: identity.role, canManage: isEmergency || identity.role === 'manager', isEmergency }
}
