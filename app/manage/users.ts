import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { nameProblem } from '../auth/access-file.js'
import { createPasswordReset, newResetToken, RESET_LIFETIME_MS } from '../auth/password-resets.js'
import { hashPassword, passwordProblem } from '../auth/passwords.js'
import { signedIn } from '../auth/plugin.js'
import {
  changeRole, countActiveManagers, createUser, findUser, isRole, lastManagerMessage, listUsers, removeUser, setDisabled, userLog,
  type User, type UserActor, type UserLogEntry,
} from '../auth/users.js'
import type { Role } from '../db/schema.js'
import { ConflictError, CsrfError, ExclusiveError, InternalError, invalidInput, NotFoundError, type FieldErrors } from '../errors.js'
import { describeError, wantsJson } from '../web/errors.js'
import { textFields } from '../web/forms.js'

interface UsersPage {
  users: User[]
  log: UserLogEntry[]
  /** What the last action did, in words. */
  done: string | null
  /** Why the last action was refused, in words. */
  problem: string | null
  errors: FieldErrors
  form: { username: string, role: Role }
  /** A reset link just made: shown this once. */
  reset: { username: string, link: string, expiresAt: string } | null
}

declare module '../web/view.js' {
  interface Pages {
    'manage-users': UsersPage
  }
}

interface AddUserBody { username?: string, password?: string, role?: string }
interface UserParams { username: string }
interface VersionBody { version?: string }
const VERSION_FORM = textFields('version')

const DONE: Record<string, (name: string) => string> = {
  added: (name) => `Added ${name}.`,
  role: (name) => `Changed the role of ${name}; they sign in again to use it.`,
  disabled: (name) => `Disabled ${name}: they cannot sign in, and were signed out everywhere.`,
  enabled: (name) => `Enabled ${name}: they can sign in again.`,
  removed: (name) => `Removed ${name}. Their name stays on what they wrote and in the logs.`,
}

/**
 * Managers list users, add them, change their role, disable, enable and remove them, and start
 * password resets. Every change is a write of the unit of work (so it is refused in maintenance
 * like any other), checked against the version the page showed, written to the user log, and
 * never leaves the site without a manager who can sign in.
 */
const usersRoutes: FastifyPluginAsync = async function usersRoutes (fastify) {
  async function usersPage (request: FastifyRequest, overrides: Partial<UsersPage> = {}): Promise<UsersPage & { title: string }> {
    const db = request.unitOfWorkOrNull?.db ?? fastify.db.reader
    const [users, log] = await Promise.all([listUsers(db), userLog(db, 20)])
    return { title: 'Users', users, log, done: null, problem: null, errors: {}, form: { username: '', role: 'member' }, reset: null, ...overrides }
  }

  function actorOf (request: FastifyRequest): UserActor {
    return { name: signedIn(request).name, channel: 'web' }
  }

  /** The user named in the path, at the version the page showed; changes to yourself are refused. */
  async function target (request: FastifyRequest<{ Params: UserParams, Body: VersionBody }>): Promise<{ user: User, version: number }> {
    const user = await findUser(request.unitOfWork.db, request.params.username)
    if (user === undefined) throw new NotFoundError(`There is no user "${request.params.username}"`)
    if (user.username === signedIn(request).name) throw invalidInput({ user: 'is you: ask another manager to change your own account' })
    const version = Number(request.body?.version ?? user.version)
    if (!Number.isInteger(version)) throw invalidInput({ version: 'must be a whole number' })
    if (version !== user.version) throw new ConflictError(`${user.username} was changed by someone else meanwhile; look again and retry`)
    return { user, version }
  }

  /** A refused change is explained on the users page, in words; other errors get the error page. */
  async function refusedUserChange (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const shown = describeError(error)
    if (shown.error instanceof InternalError || shown.error instanceof ExclusiveError || shown.error instanceof CsrfError ||
      shown.error instanceof NotFoundError || shown.statusCode === 401 || shown.statusCode === 403 || wantsJson(request)) throw error
    reply.code(shown.statusCode)
    const fields = shown.details.fields as FieldErrors | undefined
    const message = fields?.user ?? fields?.role ?? shown.message
    return reply.render('manage-users', await usersPage(request, { problem: `Not changed: ${message}.` }))
  }

  fastify.get<{ Querystring: { done?: string, name?: string } }>('/manage/users', async function listPage (request, reply) {
    const describe = DONE[request.query.done ?? '']
    return reply.render('manage-users', await usersPage(request, { done: describe !== undefined && request.query.name ? describe(request.query.name) : null }))
  })

  fastify.post<{ Body: AddUserBody }>('/manage/users', { schema: { body: textFields('username', 'password', 'role') }, errorHandler: refusedUserChange }, async function addUser (request, reply) {
    const { username = '', password = '', role = '' } = request.body ?? {}
    const uow = request.unitOfWork
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
      return reply.render('manage-users', await usersPage(request, { errors, form: { username: name, role: isRole(role) ? role : 'member' } }))
    }
    const passwordHash = await hashPassword(password)
    const actor = actorOf(request)
    uow.stage((transaction) => createUser(transaction, actor, { username: name, passwordHash, role: role as Role }))
    return reply.seeOther(`/manage/users?done=added&name=${encodeURIComponent(name)}`)
  })

  fastify.post<{ Params: UserParams, Body: VersionBody & { role?: string } }>('/manage/users/:username/role', { schema: { body: textFields('role', 'version') }, errorHandler: refusedUserChange }, async function changeUserRole (request, reply) {
    const role = request.body?.role
    if (!isRole(role)) throw invalidInput({ role: 'must be member or manager' })
    const { user, version } = await target(request)
    // Judged here on what this request read, and again inside the commit (two managers may act at once).
    if (user.role === 'manager' && role === 'member' && user.disabledAt === null && await countActiveManagers(request.unitOfWork.db) === 1) {
      throw invalidInput({ user: lastManagerMessage(user.username) })
    }
    const actor = actorOf(request)
    request.unitOfWork.stage((transaction) => changeRole(transaction, actor, user, role, version))
    return reply.seeOther(`/manage/users?done=role&name=${encodeURIComponent(user.username)}`)
  })

  for (const action of ['disable', 'enable'] as const) {
    fastify.post<{ Params: UserParams, Body: VersionBody }>(`/manage/users/:username/${action}`, { schema: { body: VERSION_FORM }, errorHandler: refusedUserChange }, async function setUserDisabled (request, reply) {
      const { user, version } = await target(request)
      const disabling = action === 'disable'
      if (disabling && user.role === 'manager' && user.disabledAt === null && await countActiveManagers(request.unitOfWork.db) === 1) {
        throw invalidInput({ user: lastManagerMessage(user.username) })
      }
      const actor = actorOf(request)
      request.unitOfWork.stage((transaction) => setDisabled(transaction, actor, user, disabling, version))
      return reply.seeOther(`/manage/users?done=${disabling ? 'disabled' : 'enabled'}&name=${encodeURIComponent(user.username)}`)
    })
  }

  fastify.post<{ Params: UserParams, Body: VersionBody }>('/manage/users/:username/remove', { schema: { body: VERSION_FORM }, errorHandler: refusedUserChange }, async function removeAUser (request, reply) {
    const { user, version } = await target(request)
    // Two deliberate steps: disabling (reversible) first, then removing (for good).
    if (user.disabledAt === null) throw invalidInput({ user: `${user.username} must be disabled before they can be removed` })
    const actor = actorOf(request)
    request.unitOfWork.stage((transaction) => removeUser(transaction, actor, user, version))
    return reply.seeOther(`/manage/users?done=removed&name=${encodeURIComponent(user.username)}`)
  })

  // The link is in this answer only (never in a URL the browser keeps), and not cached.
  fastify.post<{ Params: UserParams, Body: VersionBody }>('/manage/users/:username/reset', { schema: { body: VERSION_FORM }, errorHandler: refusedUserChange }, async function startPasswordReset (request, reply) {
    const { user } = await target(request)
    if (user.disabledAt !== null) throw invalidInput({ user: `${user.username} is disabled; enable them first` })
    const token = newResetToken()
    const now = new Date()
    const actor = actorOf(request)
    request.unitOfWork.stage((transaction) => createPasswordReset(transaction, actor, user, token, now))
    reply.header('cache-control', 'no-store')
    const link = `${request.protocol}://${request.host}/reset/${token}`
    const expiresAt = new Date(now.getTime() + RESET_LIFETIME_MS).toISOString()
    const page = await usersPage(request, { reset: { username: user.username, link, expiresAt } })
    // The page is made before the commit it reports: its log shows the entry that commit adds.
    const entry: UserLogEntry = { id: 0, at: now.toISOString(), actor: actor.name, channel: 'web', username: user.username, action: 'reset-link', detail: `valid until ${expiresAt.slice(0, 16).replace('T', ' ')} UTC` }
    return reply.render('manage-users', { ...page, log: [entry, ...page.log].slice(0, 20) })
  })
}

export default usersRoutes
