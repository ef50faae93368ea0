import { createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { finished } from 'node:stream/promises'
import path from 'node:path'
import { writeExport } from './export.js'
import type { TaskHandler } from './runner.js'

export function exportsDir (dataDir: string): string {
  return path.join(dataDir, 'exports')
}

/** An export as a task: a file in the data dir, offered for download in the control panel. */
export const exportTask: TaskHandler = async function exportTask (run) {
  const dir = exportsDir(run.env.dataDir)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const name = `quiesce-export-${new Date().toISOString().replace(/[:.]/g, '-')}-task-${run.task.id}.jsonl`
  const file = path.join(dir, name)
  // The file holds password hashes: readable by the owner only.
  const output = createWriteStream(file, { mode: 0o600 })
  let lastSaved = 0
  try {
    const summary = await writeExport(run.env.database, output, (done, total) => {
      if (Date.now() - lastSaved < 250) return
      lastSaved = Date.now()
      run.save({ done, total }).catch(() => {})
    })
    output.end()
    await finished(output)
    const rows = Object.values(summary.rows).reduce((sum, n) => sum + n, 0)
    await run.save({ done: rows, total: rows })
    return { file: name, bytes: summary.bytes, lastCommit: summary.lastCommit, rows: summary.rows }
  } catch (err) {
    output.destroy()
    await rm(file, { force: true })
    throw err
  }
}
