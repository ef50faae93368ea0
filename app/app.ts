import fastifyFormbody from '@fastify/formbody'
import fastifyStatic from '@fastify/static'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import authPlugin from './auth/plugin.js'
import type { Principal } from './auth/principal.js'
import authRoutes from './auth/routes.js'
import resetRoutes from './auth/reset-routes.js'
import { ensureSessionSecret, type Config } from './config.js'
import contentApi from './content/api.js'
import contentPlugin from './content/plugin.js'
import contentRoutes from './content/routes.js'
import type { Database } from './db/database.js'
import databasePlugin from './db/plugin.js'
import { walInsertPosition } from './db/wal-position.js'
import maintenancePlugin, { kyselyMaintenanceStore, pollingSignal, type ChangeSignal } from './maintenance/index.js'
import { postgresNotifications } from './maintenance/postgres-notifications.js'
import manageRoutes, { maintenancePageRoute } from './manage/routes.js'
import tasksPlugin from './tasks/plugin.js'
import taskRoutes from './tasks/routes.js'
import type { TaskRunnerOptions } from './tasks/runner.js'
import { PUBLIC_DIR } from './paths.js'
import unitOfWorkPlugin from './unit-of-work/plugin.js'
import errorPlugin, { answerFrameworkError } from './web/errors.js'
import finiteNumbersPlugin from './web/finite-numbers.js'
import readOnlyCopyPlugin from './web/read-only-copy.js'
import replicaReadsPlugin from './web/replica-reads.js'
import securityHeadersPlugin from './web/security-headers.js'
import viewPlugin from './web/view.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

// Units of work run as the request's principal, which is also who the maintenance rules judge.
declare module './unit-of-work/plugin.js' {
  interface UnitOfWorkTypes {
    principal: Principal | null
  }
}

export interface AppOptions {
  config: Config
  database: Database
  logger?: FastifyServerOptions['logger']
  /** Whether closing the app closes the database too (default true). */
  closeDatabase?: boolean
  /** Timings of the task runner (tests shorten them). */
  tasks?: TaskRunnerOptions
  /**
   * `false` builds the site without maintenance mode: no gate, no commit guard, no control
   * panel, no tasks. The benchmarks measure the maintenance plugin's cost against it.
   */
  maintenance?: boolean
}

/**
 * The Quiesce site as one Fastify instance: external plugins, then the app's infrastructure
 * (database, auth, views, errors, unit of work), then the routes. The unit of work is
 * registered before any route, so every route's handler runs in one.
 */
export async function buildApp (options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    return503OnClosing: true,
    // A malformed URL is refused before routing, and answered like any other error.
    frameworkErrors: answerFrameworkError,
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.decorate('config', options.config)
  await app.register(databasePlugin, { database: options.database, closeOnShutdown: options.closeDatabase })
  await app.register(readOnlyCopyPlugin, { primaryOrigin: options.config.primaryOrigin })
  await app.register(securityHeadersPlugin, {
    helmet: {
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          objectSrc: ["'none'"],
          baseUri: ["'self'"],
          // Keep plain-HTTP installs (http://127.0.0.1:3000) working; HSTS covers HTTPS sites.
          upgradeInsecureRequests: null,
        },
      },
    },
  })
  await app.register(fastifyFormbody)
  await app.register(finiteNumbersPlugin)
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/static/', maxAge: '1h' })
  await app.register(authPlugin, {
    sessionSecret: ensureSessionSecret(options.config),
    accessFile: options.config.accessFile,
    servedWithoutDatabase: (request) => request.routeOptions.config.maintenance === 'always-open' || request.url.startsWith('/static/'),
    databaseAvailable: () => !app.hasDecorator('maintenance') || app.maintenance.healthy,
  })
  await app.register(viewPlugin)
  await app.register(errorPlugin)
  await app.register(contentPlugin)
  const replicas = options.database.replicas
  await app.register(unitOfWorkPlugin, {
    attempts: options.config.retryAttempts,
    principalOf: (request) => request.principal,
    ...replicas !== undefined && {
      readerOf: (request) => request.replica?.db,
      commitPosition: walInsertPosition,
    },
  })
  if (replicas !== undefined) await app.register(replicaReadsPlugin, { replicas, secret: ensureSessionSecret(options.config) })

  const withMaintenance = options.maintenance !== false
  if (withMaintenance) {
    await app.register(maintenancePlugin, {
      store: kyselyMaintenanceStore(options.database.writer),
      unitOfWork: app.unitOfWork,
      principalOf: (request) => request.principal,
      changeSignal: changeSignalFor(options.database, app.log),
      instanceId: options.config.instanceId,
      retryAfterSeconds: options.config.retryAfterSeconds,
      alwaysOpenPrefixes: ['/static/'],
      standby: () => options.database.standby,
      describeInstance: () => ({ database: describeDatabase(options.database) }),
      ...options.database.primaryRegistry !== undefined && { registryStore: kyselyMaintenanceStore(options.database.primaryRegistry) },
    })

    await app.register(tasksPlugin, options.tasks ?? {})
  }

  await app.register(authRoutes)
  await app.register(resetRoutes)
  await app.register(contentRoutes)
  await app.register(contentApi)
  if (withMaintenance) {
    await app.register(manageRoutes)
    await app.register(maintenancePageRoute)
    await app.register(taskRoutes)
  }
  return app
}

/**
 * What the registry and the control panel show of an instance's database (`label`: the panel's
 * words): its role and, on a primary with replicas, each replica's replay lag (time and bytes)
 * and whether requests read from it now. From memory: the replicas' last checks.
 */
function describeDatabase (database: Database): Record<string, unknown> {
  if (database.kind === 'sqlite') return { kind: 'sqlite', role: 'file', label: 'SQLite file' }
  if (database.standby) return { kind: 'postgres', role: 'standby', label: 'PostgreSQL standby (a read-only copy)' }
  const replicas = (database.replicas?.status() ?? []).map((replica) => ({
    name: replica.name, usedForReads: replica.usable, lagMs: replica.lagMs, lagBytes: replica.lagBytes, problem: replica.problem,
  }))
  const label = ['PostgreSQL primary', ...replicas.map((replica) => replica.usedForReads
    ? `reads on ${replica.name} (${replica.lagMs ?? '?'} ms, ${replica.lagBytes ?? '?'} bytes behind)`
    : `${replica.name} not read from: ${replica.problem ?? 'not checked yet'}`)].join('; ')
  return replicas.length === 0 ? { kind: 'postgres', role: 'primary', label } : { kind: 'postgres', role: 'primary', label, replicas }
}

/** How this instance learns that another one changed the maintenance state. */
function changeSignalFor (database: Database, log: FastifyBaseLogger): ChangeSignal {
  if (database.postgresUrl === undefined) return pollingSignal({ check: database.dataVersion! })
  const notifications = postgresNotifications({ connectionString: database.postgresUrl, log })
  return database.standby ? untilPromoted(database, notifications) : notifications
}

/** How often a standby instance re-reads the state: NOTIFY does not cross replication. */
const STANDBY_STATE_POLL_MS = 200

/**
 * On a standby, where LISTEN is refused and notifications do not replicate: a re-read of the
 * state row every {@link STANDBY_STATE_POLL_MS}; once the database is promoted, `then` (the
 * notifications) instead.
 */
function untilPromoted (database: Database, then: ChangeSignal): ChangeSignal {
  let poll: NodeJS.Timeout | undefined
  let stopped = false
  return {
    async start (onSignal) {
      poll = setInterval(onSignal, STANDBY_STATE_POLL_MS)
      poll.unref()
      database.onPromoted(() => {
        clearInterval(poll)
        if (!stopped) then.start(onSignal).catch(() => { if (!stopped) poll = setInterval(onSignal, STANDBY_STATE_POLL_MS) })
      })
    },
    async stop () {
      stopped = true
      clearInterval(poll)
      await then.stop()
    },
  }
}
