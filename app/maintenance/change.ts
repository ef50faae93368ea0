import { InvalidStateChangeError, NotMaintainerError, NotManagerError, StateConflictError } from './errors.js'
import { decideChange, publicState, readChangeRequest, type Channel, type ChangeRequestInput, type MaintenancePrincipal, type MaintenanceState } from './state.js'
import type { MaintenanceStore } from './store.js'

/**
 * Changes the shared state by the rules of PRODUCT §2.1 (for the plugin's routes, and for a
 * command line that has no running app). Every attempt is in the audit log; a refusal throws
 * the matching `QUIESCE_*` error.
 */
export async function changeMaintenanceState (
  store: MaintenanceStore, principal: MaintenancePrincipal, input: ChangeRequestInput, channel: Channel, instance: string, inputProblem?: string
): Promise<{ previous: MaintenanceState, state: MaintenanceState }> {
  const read = readChangeRequest(input)
  const request = read.request
  const problem = inputProblem ?? read.problem
  const now = new Date().toISOString()
  const { previous, decision } = await store.change(
    { actor: principal.name, channel, instance, toMode: request.mode, reason: request.reason, until: request.until, expectedVersion: request.expectedVersion },
    (current) => problem !== undefined
      ? { outcome: 'refused', reason: 'invalid', detail: problem }
      : decideChange(current, request, principal, now)
  )
  if (decision.outcome === 'applied') return { previous, state: decision.state }
  switch (decision.reason) {
    case 'not-manager': throw new NotManagerError('change maintenance mode')
    case 'not-maintainer': throw Object.assign(new NotMaintainerError(previous.maintainer ?? 'nobody'), { maintainer: previous.maintainer })
    case 'version-conflict': throw Object.assign(new StateConflictError(previous.version, request.expectedVersion), { state: publicState(previous, principal) })
    default: throw new InvalidStateChangeError(decision.detail)
  }
}
