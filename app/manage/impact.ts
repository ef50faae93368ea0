import type { FastifyInstance } from 'fastify'
import { readAccessFile } from '../auth/access-file.js'
import type { Principal } from '../auth/principal.js'
import { signedInPeople } from '../auth/session-store.js'
import { ACTIVE_STATES, type Task } from '../tasks/tasks.js'

/** What switching to Exclusive would do now, for the confirmation step. */
export interface ExclusiveImpact {
  /** Signed in now (a session that has not expired), who would be locked out: not you, not the emergency user. */
  people: Array<{ name: string, lastSeen: string }>
  /** Of those, how many used the site in the last {@link RECENT_MINUTES} minutes. */
  recentlyActive: number
  /** Writes running now on the live instances (this confirmation step is not one). */
  writesInFlight: number
  instances: number
  /** Tasks of other people that will wait until the site is normal again. */
  waitingTasks: Task[]
}

export const RECENT_MINUTES = 15

export async function exclusiveImpact (fastify: FastifyInstance, actor: Principal): Promise<ExclusiveImpact> {
  const [sessions, instances, emergency, tasks] = await Promise.all([
    signedInPeople(fastify.db.reader),
    fastify.maintenance.instances(),
    readAccessFile(fastify.config.accessFile).catch(() => []),
    fastify.tasks.list(50),
  ])
  const exempt = new Set([actor.name, ...emergency.map((entry) => entry.name)])
  const people = sessions.filter((person) => !exempt.has(person.name))
  const recent = Date.now() - RECENT_MINUTES * 60_000
  const live = instances.filter((instance) => !instance.stale)
  return {
    people,
    recentlyActive: people.filter((person) => Date.parse(person.lastSeen) >= recent).length,
    writesInFlight: live.reduce((sum, instance) => sum + instance.writesInFlight, 0),
    instances: live.length,
    waitingTasks: tasks.filter((task) => ACTIVE_STATES.includes(task.state) && task.state !== 'cancelling' && task.startedBy.name !== actor.name && !task.startedBy.isEmergency),
  }
}
