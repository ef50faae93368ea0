/**
 * The chaos history check: a recorded history of HTTP requests and answers (writers, the
 * manager) checked against what the database holds afterwards. Pure: no I/O, so its rules can be
 * shown to fail on doctored copies of a real history (test/chaos.test.ts).
 *
 * What it relies on from the database:
 * - `commit_log`: one row per committed unit of work, with its actor and the maintenance state
 *   version it was applied under (`state_version`, read by the commit's own last statement, held
 *   with a share lock on PostgreSQL; SQLite serialises writers);
 * - `maintenance_log`: one row per change attempt; the applied ones form the chain of versions;
 * - the documents (version, body) and their catalog entries.
 * What it relies on from the workload: every write carries a unique token (in the body, or as
 * the slug of a new document), every change attempt a unique reason; each principal's writes are
 * issued one after another by one client, so that client's acknowledged writes and the actor's
 * commit rows pair up in order.
 */
export type Mode = 'normal' | 'concurrent' | 'exclusive'
export type OpKind = 'create' | 'update' | 'delete' | 'read' | 'switch' | 'state'

export interface Op {
  n: number
  kind: OpKind
  who: string
  instance: string
  method: string
  path: string
  via: 'api' | 'form'
  slug?: string
  /** The write's unique token (in its body) or the change attempt's reason. */
  token?: string
  /** A change attempt's mode. */
  target?: Mode
  expectedVersion?: number
  /** ms, on the checking process's monotonic clock. */
  start: number
  end: number
  /** 0: no answer. */
  status: number
  code?: string
  /** The version the answer states (a document's, or the maintenance state's). */
  version?: number
  /** A read's token (parsed from the body read). */
  readToken?: string
  /** The replica that served the request (its `Quiesce-Replica` header), when one did. */
  replica?: string
  error?: string
}

export interface DocumentRow { slug: string, version: number, body: string }
export interface CommitRow { id: number, actor: string | null, stateVersion: number | null }
export interface AuditRow {
  id: number
  actor: string
  channel: string
  instance: string
  fromMode: string
  toMode: string
  reason: string | null
  expectedVersion: number
  newVersion: number | null
  outcome: string
  detail: string | null
}
export interface CatalogRow { slug: string, title: string | null, body: string | null, docTitle: string, docBody: string }

export interface ChaosSnapshot {
  initial: { version: number, mode: Mode, maintainer: string | null, documents: DocumentRow[] }
  final: { version: number, mode: Mode, maintainer: string | null, documents: DocumentRow[] }
  /** Commits made during the run, by id. */
  commits: CommitRow[]
  /** Audit rows written during the run, by id. */
  audit: AuditRow[]
  /** Each document with its catalog entry (null fields: none), and catalog entries without a document. */
  catalog: CatalogRow[]
  catalogOrphans: number
}

export interface ChaosRules {
  /** The emergency user: may write in every mode. */
  emergency: string
  /** Extra tolerance for the gate's copy of the state: an exclusive refusal this long after the site reopened is still explained. */
  gateLagMs: number
  /** Who writes documents shared by several writers (their answers carry versions). */
  sharedSlugs: ReadonlySet<string>
}

export interface Violation { rule: string, detail: string }

export interface ChaosCounts {
  requests: number
  noAnswer: number
  serverErrors: number
  documented503: number
  switchAttempts: number
  switchesApplied: number
  switchesRefused: Record<string, number>
  writes: number
  writesByOutcome: Record<string, number>
  reads: number
  commitsChecked: number
  auditRowsChecked: number
  documentsChecked: number
  writesLost: number
  refusedWritesPresent: number
  forbiddenCommits: number
  /** Answer times by kind of request, ms. */
  latency: Record<string, { p50: number, p99: number, max: number }>
}

export interface ChaosReport {
  counts: ChaosCounts
  violations: Violation[]
  /** Violations per rule. */
  byRule: Record<string, number>
}

export const RULES = {
  answer: 'unexpected answer',
  forbidden: 'forbidden commit (by its state version)',
  forbiddenSeen: 'forbidden commit (seen from the clients)',
  unstamped: 'commit without a state version',
  stampTime: 'commit state version contradicts real time',
  lost: 'acknowledged write missing',
  phantom: 'refused write present',
  unacknowledged: 'commit nobody was told about',
  unavailable: 'refused although the mode allowed it',
  auditMissing: 'change attempt missing from the audit log',
  auditUnasked: 'audit row for no attempt',
  auditDiffers: 'audit row differs from the answer',
  chain: 'applied changes do not form a chain',
  order: 'applied changes contradict real time',
  catalog: 'catalog entry disagrees with its document',
  read: 'read saw a refused or missed an acknowledged write',
  harness: 'history cannot be checked',
} as const

const WRITE_KINDS: ReadonlySet<OpKind> = new Set(['create', 'update', 'delete'])
const TOKEN = /chaos-token:(\S+)/

export function tokenIn (body: string): string | undefined {
  return TOKEN.exec(body)?.[1]
}

export function isWrite (op: Op): boolean {
  return WRITE_KINDS.has(op.kind)
}

export function acknowledged (op: Op): boolean {
  return op.status >= 200 && op.status < 400
}

/** What each kind of request may answer; anything else (a 5xx, a 401, a 429, no answer) is a finding. */
function expectedAnswer (op: Op): boolean {
  const code = op.code
  if (op.status === 0) return false
  if (op.kind === 'switch') {
    return op.status === 200 || (op.status === 400 && code === 'QUIESCE_INVALID_STATE_CHANGE') ||
      (op.status === 403 && (code === 'QUIESCE_NOT_MAINTAINER' || code === 'QUIESCE_NOT_MANAGER')) ||
      (op.status === 409 && code === 'QUIESCE_STATE_CONFLICT')
  }
  if (op.kind === 'state') return op.status === 200
  const refused503 = op.status === 503 && (op.via === 'form' || code === 'QUIESCE_READ_ONLY' || code === 'QUIESCE_EXCLUSIVE')
  if (op.kind === 'read') return op.status === 200 || (op.status === 503 && (code === 'QUIESCE_EXCLUSIVE'))
  if (refused503) return true
  if (op.status === 409 && (op.via === 'form' || code === 'QUIESCE_CONFLICT')) return true
  if (op.via === 'form') return op.status === 303
  return op.kind === 'delete' ? op.status === 204 : (op.status === 200 || op.status === 201)
}

interface VersionInfo {
  version: number
  mode: Mode
  maintainer: string | null
  /** When the attempt that made it was sent and answered (-Infinity for the version the run began with). */
  start: number
  end: number
}

export function checkHistory (ops: readonly Op[], snapshot: ChaosSnapshot, rules: ChaosRules): ChaosReport {
  const violations: Violation[] = []
  const flag = (rule: string, detail: string) => violations.push({ rule, detail })
  const describe = (op: Op) => `#${op.n} ${op.who}@${op.instance} ${op.method} ${op.path} [${op.start.toFixed(1)}–${op.end.toFixed(1)} ms] → ${op.status}${op.code === undefined ? '' : ` ${op.code}`}`

  // --- Answers -------------------------------------------------------------------------------
  let serverErrors = 0
  let documented503 = 0
  for (const op of ops) {
    if (op.status >= 500 && !(op.status === 503 && expectedAnswer(op))) serverErrors++
    if (op.status === 503 && expectedAnswer(op)) documented503++
    if (!expectedAnswer(op)) flag(RULES.answer, `${describe(op)}${op.error === undefined ? '' : ` (${op.error})`}`)
  }

  // --- The audit log and the chain of versions -------------------------------------------------
  const attempts = ops.filter((op) => op.kind === 'switch' && op.status !== 0)
  const rowsByReason = new Map<string, AuditRow[]>()
  for (const row of snapshot.audit) {
    const list = rowsByReason.get(row.reason ?? '') ?? []
    list.push(row)
    rowsByReason.set(row.reason ?? '', list)
  }
  const attemptTokens = new Set(attempts.map((op) => op.token))
  for (const row of snapshot.audit) {
    if (!attemptTokens.has(row.reason ?? undefined)) flag(RULES.auditUnasked, `audit row ${row.id} (${row.actor}, ${row.fromMode} → ${row.toMode}, ${row.outcome}, reason ${JSON.stringify(row.reason)})`)
  }
  const versions = new Map<number, VersionInfo>()
  versions.set(snapshot.initial.version, { version: snapshot.initial.version, mode: snapshot.initial.mode, maintainer: snapshot.initial.maintainer, start: -Infinity, end: -Infinity })
  const applied: Array<{ op: Op, row: AuditRow }> = []
  for (const op of attempts) {
    const rows = rowsByReason.get(op.token!) ?? []
    if (rows.length === 0) {
      flag(RULES.auditMissing, describe(op))
      continue
    }
    if (rows.length > 1) flag(RULES.auditUnasked, `${rows.length} audit rows for ${describe(op)}`)
    const row = rows[0]!
    const problems: string[] = []
    if (row.actor !== op.who) problems.push(`actor ${row.actor}`)
    if (row.instance !== op.instance) problems.push(`instance ${row.instance}`)
    if (row.channel !== 'api') problems.push(`channel ${row.channel}`)
    if (row.toMode !== op.target) problems.push(`to ${row.toMode}`)
    if (row.expectedVersion !== op.expectedVersion) problems.push(`expected version ${row.expectedVersion}`)
    const outcome = op.status === 200 ? 'applied' : 'refused'
    if (row.outcome !== outcome) problems.push(`outcome ${row.outcome}`)
    if (op.status === 200 && row.newVersion !== op.version) problems.push(`new version ${row.newVersion} (answered ${op.version})`)
    if (op.status !== 200 && row.newVersion !== null) problems.push(`new version ${row.newVersion} for a refusal`)
    const detailFits = op.code === 'QUIESCE_NOT_MAINTAINER'
      ? /^the maintainer is /.test(row.detail ?? '')
      : op.code === 'QUIESCE_NOT_MANAGER'
        ? / is not a manager$/.test(row.detail ?? '')
        : op.code === 'QUIESCE_STATE_CONFLICT' ? /^based on version /.test(row.detail ?? '') : true
    if (!detailFits) problems.push(`detail ${JSON.stringify(row.detail)}`)
    if (problems.length > 0) flag(RULES.auditDiffers, `${describe(op)}: ${problems.join(', ')}`)
    if (op.status === 200 && row.outcome === 'applied') applied.push({ op, row })
  }
  applied.sort((a, b) => a.row.newVersion! - b.row.newVersion!)
  let previous = versions.get(snapshot.initial.version)!
  for (const { op, row } of applied) {
    if (row.newVersion !== previous.version + 1 || row.fromMode !== previous.mode) {
      flag(RULES.chain, `audit row ${row.id}: version ${row.newVersion} from ${row.fromMode}, after version ${previous.version} (${previous.mode})`)
    }
    if (op.end < previous.start) flag(RULES.order, `version ${row.newVersion} (${describe(op)}) was acknowledged before version ${previous.version} was asked for`)
    const info: VersionInfo = { version: row.newVersion!, mode: row.toMode as Mode, maintainer: row.toMode === 'normal' ? null : row.actor, start: op.start, end: op.end }
    versions.set(info.version, info)
    previous = info
  }
  if (previous.version !== snapshot.final.version || previous.mode !== snapshot.final.mode || previous.maintainer !== snapshot.final.maintainer) {
    flag(RULES.chain, `the state is at version ${snapshot.final.version} (${snapshot.final.mode}, maintainer ${snapshot.final.maintainer}); the audit log ends at ${previous.version} (${previous.mode}, maintainer ${previous.maintainer})`)
  }
  const chain = [...versions.values()].sort((a, b) => a.version - b.version)
  const mayWrite = (who: string, info: VersionInfo) => info.mode === 'normal' || who === rules.emergency || who === info.maintainer
  /** The versions that may have been in force at some moment of [start, end]. */
  const possible = (start: number, end: number, lagMs = 0) => chain.filter((info) => {
    const next = versions.get(info.version + 1)
    return info.start < end && (next === undefined || next.end + lagMs > start)
  })

  // --- Availability: a refusal the mode cannot explain ----------------------------------------
  for (const op of ops) {
    if (!isWrite(op) && op.kind !== 'read') continue
    if (op.status !== 503 || !expectedAnswer(op)) continue
    const explains = (info: VersionInfo, mode: Mode) => info.mode === mode && !mayWrite(op.who, info)
    const readOnly = possible(op.start, op.end).some((info) => explains(info, 'concurrent'))
    const exclusive = possible(op.start, op.end, rules.gateLagMs).some((info) => explains(info, 'exclusive'))
    const explained = op.code === 'QUIESCE_READ_ONLY' ? readOnly : op.code === 'QUIESCE_EXCLUSIVE' ? exclusive : readOnly || exclusive
    if (!explained) flag(RULES.unavailable, describe(op))
  }

  // --- Forbidden commits, seen from the clients alone ------------------------------------------
  const writes = ops.filter(isWrite)
  for (const op of writes) {
    if (!acknowledged(op)) continue
    if (!possible(op.start, op.end).some((info) => mayWrite(op.who, info))) flag(RULES.forbiddenSeen, describe(op))
  }

  // --- Commits: each acknowledged write has one, each commit an acknowledged write -------------
  const commitsByActor = new Map<string, CommitRow[]>()
  for (const commit of snapshot.commits) {
    const list = commitsByActor.get(commit.actor ?? '(nobody)') ?? []
    list.push(commit)
    commitsByActor.set(commit.actor ?? '(nobody)', list)
  }
  const writesByActor = new Map<string, Op[]>()
  for (const op of writes) {
    const list = writesByActor.get(op.who) ?? []
    list.push(op)
    writesByActor.set(op.who, list)
  }
  let forbiddenCommits = 0
  for (const commit of snapshot.commits) {
    if (commit.stateVersion === null) {
      flag(RULES.unstamped, `commit ${commit.id} by ${commit.actor}`)
      continue
    }
    const info = versions.get(commit.stateVersion)
    if (info === undefined) {
      flag(RULES.forbidden, `commit ${commit.id} by ${commit.actor} under version ${commit.stateVersion}, which no change made`)
      forbiddenCommits++
    } else if (!mayWrite(commit.actor ?? '', info)) {
      flag(RULES.forbidden, `commit ${commit.id} by ${commit.actor} under version ${info.version} (${info.mode}, maintainer ${info.maintainer})`)
      forbiddenCommits++
    }
  }
  for (const [actor, commits] of commitsByActor) {
    const mine = (writesByActor.get(actor) ?? []).sort((a, b) => a.start - b.start)
    for (let i = 1; i < mine.length; i++) {
      if (mine[i]!.start < mine[i - 1]!.end) {
        flag(RULES.harness, `${actor} had two writes in flight at once (#${mine[i - 1]!.n}, #${mine[i]!.n}): its commits cannot be paired with its answers`)
        break
      }
    }
    const acked = mine.filter(acknowledged)
    if (commits.length > acked.length) flag(RULES.unacknowledged, `${actor}: ${commits.length} commits, ${acked.length} acknowledged writes`)
    if (commits.length < acked.length) flag(RULES.lost, `${actor}: ${acked.length} acknowledged writes, ${commits.length} commits`)
    if (commits.length !== acked.length) continue
    commits.forEach((commit, i) => {
      const op = acked[i]!
      if (commit.stateVersion === null || !versions.has(commit.stateVersion)) return
      if (!possible(op.start, op.end).some((info) => info.version === commit.stateVersion)) {
        flag(RULES.stampTime, `commit ${commit.id} says version ${commit.stateVersion}, but its request ${describe(op)} ran while ${possible(op.start, op.end).map((info) => info.version).join(', ')} could be in force`)
      }
    })
  }
  for (const [actor, mine] of writesByActor) {
    if (!commitsByActor.has(actor) && mine.some(acknowledged)) flag(RULES.lost, `${actor}: ${mine.filter(acknowledged).length} acknowledged writes, no commit`)
  }

  // --- Documents: every acknowledged write is there, no refused one ---------------------------
  const initialDocs = new Map(snapshot.initial.documents.map((doc) => [doc.slug, doc]))
  const finalDocs = new Map(snapshot.final.documents.map((doc) => [doc.slug, doc]))
  const opsBySlug = new Map<string, Op[]>()
  for (const op of ops) {
    if (op.slug === undefined || (!isWrite(op) && op.kind !== 'read')) continue
    const list = opsBySlug.get(op.slug) ?? []
    list.push(op)
    opsBySlug.set(op.slug, list)
  }
  const refusedTokens = new Set(writes.filter((op) => !acknowledged(op)).map((op) => op.token))
  const missingOrPhantom = (slug: string, token: string | undefined, expected: string | undefined, what: string) => {
    if (token !== undefined && refusedTokens.has(token)) flag(RULES.phantom, `${slug}: holds the refused write ${token} (${what})`)
    else flag(RULES.lost, `${slug}: holds ${token ?? 'no token'}, not the acknowledged ${expected ?? 'nothing'} (${what})`)
  }
  let documentsChecked = 0
  for (const [slug, slugOps] of opsBySlug) {
    documentsChecked++
    const start = initialDocs.get(slug)
    const end = finalDocs.get(slug)
    if (rules.sharedSlugs.has(slug)) {
      // Several writers: each acknowledged update names its version; together they must be
      // exactly the versions the document went through.
      const base = start?.version ?? 0
      const finalVersion = end?.version ?? 0
      const seen = new Map<number, Op[]>()
      for (const op of slugOps) {
        if (!isWrite(op) || !acknowledged(op)) continue
        const list = seen.get(op.version ?? -1) ?? []
        list.push(op)
        seen.set(op.version ?? -1, list)
      }
      for (let v = base + 1; v <= finalVersion; v++) {
        const list = seen.get(v) ?? []
        if (list.length === 0) flag(RULES.phantom, `${slug}: version ${v} was committed, but no writer was told so`)
        if (list.length > 1) flag(RULES.lost, `${slug}: version ${v} was acknowledged ${list.length} times (${list.map(describe).join('; ')})`)
      }
      for (const [v, list] of seen) if (v <= base || v > finalVersion) for (const op of list) flag(RULES.lost, `${slug}: ${describe(op)} acknowledged version ${v}; the document is at ${finalVersion}`)
      const last = seen.get(finalVersion)?.[0]
      const expected = finalVersion > base ? last?.token : tokenIn(start?.body ?? '')
      const held = end === undefined ? undefined : tokenIn(end.body)
      if (held !== expected) missingOrPhantom(slug, held, expected, `version ${finalVersion}`)
      continue
    }
    // One writer, one request at a time: replay its acknowledged writes in order.
    let exists = start !== undefined
    let version = start?.version ?? 0
    let token = start === undefined ? undefined : tokenIn(start.body)
    for (const op of slugOps.sort((a, b) => a.start - b.start)) {
      if (op.kind === 'read') {
        if (op.status !== 200) continue
        if (!exists || op.readToken !== token || op.version !== version) {
          flag(RULES.read, `${describe(op)} read ${op.readToken ?? 'nothing'} at version ${op.version}; acknowledged so far: ${token ?? 'nothing'} at version ${version}`)
        }
        continue
      }
      if (!acknowledged(op)) continue
      if (op.kind === 'delete') {
        exists = false
        continue
      }
      version = op.kind === 'create' ? 1 : version + 1
      exists = true
      token = op.token
      if (op.version !== undefined && op.version !== version) {
        flag(op.version > version ? RULES.phantom : RULES.lost, `${slug}: ${describe(op)} answered version ${op.version}, expected ${version}`)
        version = op.version
      }
    }
    if (exists && end === undefined) flag(RULES.lost, `${slug}: gone, but its last acknowledged write (${token}) made it exist`)
    else if (!exists && end !== undefined) missingOrPhantom(slug, tokenIn(end.body), undefined, 'it should not exist')
    else if (end !== undefined) {
      const held = tokenIn(end.body)
      if (held !== token) missingOrPhantom(slug, held, token, `version ${end.version}`)
      else if (end.version > version) flag(RULES.phantom, `${slug}: at version ${end.version}, but ${version} acknowledged`)
      else if (end.version < version) flag(RULES.lost, `${slug}: at version ${end.version}, but ${version} acknowledged`)
    }
  }

  // --- Catalog: no unit of work half-applied ----------------------------------------------------
  for (const row of snapshot.catalog) {
    if (row.title !== row.docTitle || row.body !== row.docBody) flag(RULES.catalog, `${row.slug}: catalog ${JSON.stringify(row.title)}, document ${JSON.stringify(row.docTitle)}`)
  }
  if (snapshot.catalogOrphans > 0) flag(RULES.catalog, `${snapshot.catalogOrphans} catalog entries without a document`)

  // --- Counts -----------------------------------------------------------------------------------
  const byRule: Record<string, number> = {}
  for (const v of violations) byRule[v.rule] = (byRule[v.rule] ?? 0) + 1
  const switchesRefused: Record<string, number> = {}
  for (const op of attempts) if (op.status !== 200) switchesRefused[`${op.status} ${op.code ?? ''}`.trim()] = (switchesRefused[`${op.status} ${op.code ?? ''}`.trim()] ?? 0) + 1
  const writesByOutcome: Record<string, number> = {}
  for (const op of writes) {
    const key = acknowledged(op) ? `${op.status}` : `${op.status} ${op.code ?? (op.via === 'form' ? 'page' : '')}`.trim()
    writesByOutcome[key] = (writesByOutcome[key] ?? 0) + 1
  }
  return {
    counts: {
      requests: ops.length,
      noAnswer: ops.filter((op) => op.status === 0).length,
      serverErrors,
      documented503,
      switchAttempts: attempts.length,
      switchesApplied: applied.length,
      switchesRefused,
      writes: writes.length,
      writesByOutcome,
      reads: ops.filter((op) => op.kind === 'read').length,
      commitsChecked: snapshot.commits.length,
      auditRowsChecked: snapshot.audit.length,
      documentsChecked,
      writesLost: byRule[RULES.lost] ?? 0,
      refusedWritesPresent: (byRule[RULES.phantom] ?? 0) + (byRule[RULES.unacknowledged] ?? 0),
      forbiddenCommits,
      latency: latencies(ops),
    },
    violations,
    byRule,
  }
}

function latencies (ops: readonly Op[]): ChaosCounts['latency'] {
  const byKind = new Map<string, number[]>()
  for (const op of ops) {
    const key = isWrite(op) ? 'write' : op.kind
    const list = byKind.get(key) ?? []
    list.push(op.end - op.start)
    byKind.set(key, list)
  }
  const result: ChaosCounts['latency'] = {}
  for (const [key, list] of byKind) {
    list.sort((a, b) => a - b)
    const at = (p: number) => list[Math.min(list.length - 1, Math.ceil(p * list.length) - 1)]!
    result[key] = { p50: Math.round(at(0.5)), p99: Math.round(at(0.99)), max: Math.round(list.at(-1)!) }
  }
  return result
}

/** The report as a few lines for the test's output. */
export function formatReport (title: string, report: ChaosReport, durationMs: number): string {
  const c = report.counts
  const list = (record: Record<string, number>) => Object.entries(record).sort().map(([key, n]) => `${key}: ${n}`).join(', ') || 'none'
  const lines = [
    `${title}: ${(durationMs / 1000).toFixed(1)} s`,
    `  requests ${c.requests} (no answer ${c.noAnswer}, 5xx other than the documented 503s ${c.serverErrors}, documented 503s ${c.documented503})`,
    `  switches: ${c.switchesApplied} applied of ${c.switchAttempts} attempts; refused: ${list(c.switchesRefused)}`,
    `  writes ${c.writes}: ${list(c.writesByOutcome)}; reads ${c.reads}`,
    `  checked: ${c.commitsChecked} commits, ${c.auditRowsChecked} audit rows, ${c.documentsChecked} documents`,
    `  writes lost ${c.writesLost}, refused writes present ${c.refusedWritesPresent}, forbidden commits ${c.forbiddenCommits}`,
    `  answer times p50/p99/max ms: ${Object.entries(c.latency).sort().map(([key, l]) => `${key} ${l.p50}/${l.p99}/${l.max}`).join(', ')}`,
    `  violations ${report.violations.length}${report.violations.length === 0 ? '' : `: ${list(report.byRule)}`}`,
  ]
  for (const v of report.violations.slice(0, 10)) lines.push(`    ${v.rule}: ${v.detail}`)
  return lines.join('\n')
}
