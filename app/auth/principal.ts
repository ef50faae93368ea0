import type { Role } from '../db/schema.js'

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
