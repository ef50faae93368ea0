import type { FastifyPluginAsync } from 'fastify'
import { nameProblem } from '../auth/access-file.js'
import { hashPassword, passwordProblem } from '../auth/passwords.js'
import { countManagers, insertUser, isRole, listUsers, type User } from '../auth/users.js'
import type { Role } from '../db/schema.js'
import { ConflictError, invalidInput, NotFoundError, type FieldErrors } from '../errors.js'
import { assertVersionMatched } from '../unit-of-work/unit-of-work.js'

declare module '../web/view.js' {
  interface Pages {
    'manage-users': { users: User[], added: string | null, errors: FieldErrors, form: { username: string, role: Role } }
  }
}

interface AddUserBody { username?: string, password?: string, role?: string }

/** Managers list users, add them and change their role; writes go through the unit of work. */
const usersRoutes: FastifyPluginAsync = async function usersRoutes (fastify) {
  fastify.get<{ Querystring: { added?: string } }>('/manage/users', async function usersPage (request, reply) {
    const users = await listUsers(request.unitOfWork!.db)
    return reply.render('manage-users', { title: 'Users', users, added: request.query.added ?? null, errors: {}, form: { username: '', role: 'member' } })
  })

  fastify.post<{ Body: AddUserBody }>('/manage/users', async function addUser (request, reply) {
    const { username = '', password = '', role = '' } = request.body ?? {}
    const uow = request.unitOfWork!
    const users = await listUsers(uow.db)
    const errors: FieldErrors = {}
    const name = username.trim()
    const badName = nameProblem(name)
    if (badName !== undefined) errors.username = badName
    else if (users.some((user) => user.username === name)) errors.username = 'is already taken'
    const badPassword = passwordProblem(password)
    if (badPassword !== undefined) errors.password = badPassword
    if (!isRole(role)) errors.role = 'must be member or manager'
    if (Object.keys(errors).length > 0) {
      reply.code(400)
      return reply.render('manage-users', { title: 'Users', users, added: null, errors, form: { username: name, role: isRole(role) ? role : 'member' } })
    }
    const passwordHash = await hashPassword(password)
    uow.stage((transaction) => insertUser(transaction, { username: name, passwordHash, role: role as Role }))
    return reply.seeOther(`/manage/users?added=${encodeURIComponent(name)}`)
  })

  fastify.post<{ Params: { username: string }, Body: { role?: string, version?: string } }>('/manage/users/:username/role', async function changeRole (request, reply) {
    const uow = request.unitOfWork!
    const role = request.body?.role
    if (!isRole(role)) throw invalidInput({ role: 'must be member or manager' })
    const user = (await listUsers(uow.db)).find((candidate) => candidate.username === request.params.username)
    if (user === undefined) throw new NotFoundError(`There is no user "${request.params.username}"`)
    if (user.role === 'manager' && role === 'member' && await countManagers(uow.db) === 1) {
      throw invalidInput({ role: `cannot be taken from ${user.username}: the site needs at least one manager` })
    }
    const expected = Number(request.body?.version ?? user.version)
    if (expected !== user.version) throw new ConflictError(`${user.username} was changed by someone else meanwhile; look again and retry`)
    uow.stage(async (transaction) => {
      const result = await transaction.updateTable('app_user')
        .set((eb) => ({ role, version: eb('version', '+', 1), updated_at: new Date().toISOString() }))
        .where('id', '=', user.id).where('version', '=', expected)
        .executeTakeFirst()
      assertVersionMatched(result, `user ${user.username}`)
    })
    return reply.seeOther('/manage/users')
  })
}

export default usersRoutes
