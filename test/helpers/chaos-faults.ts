/**
 * Faults planted into one `quiesce serve` process (loaded with `--import` before the app, so
 * it patches the unit of work before the maintenance plugin registers its hooks), to show that
 * the chaos history check catches them. CHAOS_FAULT:
 * - `no-guard`: the maintenance plugin's commit hooks are never registered: this instance
 *   commits every write the gate lets through.
 * - `cached-guard`: only the early check remains, which trusts this instance's copy of the
 *   state while it allows a write: the classic hole of judging a write by a cached mode, open
 *   for as long as the instance has not heard of a switch.
 */
import { UnitOfWorkEngine } from '../../app/unit-of-work/unit-of-work.js'

const fault = process.env.CHAOS_FAULT
// The guard hooks in through guardAtBegin (its read sent with the BEGIN), or onBeforeWrites
// with a store that cannot: both are taken away.
if (fault === 'no-guard') {
  UnitOfWorkEngine.prototype.onBeforeWrites = function plantedNoGuard () {}
  UnitOfWorkEngine.prototype.guardAtBegin = function plantedNoGuard () {}
  UnitOfWorkEngine.prototype.onBeforeCommit = function plantedNoEarlyCheck () {}
} else if (fault === 'cached-guard') {
  UnitOfWorkEngine.prototype.onBeforeWrites = function plantedNoGuard () {}
  UnitOfWorkEngine.prototype.guardAtBegin = function plantedNoGuard () {}
} else {
  throw new Error(`CHAOS_FAULT must be no-guard or cached-guard, not ${String(fault)}`)
}
process.stderr.write(`chaos fault planted: ${fault}\n`)
