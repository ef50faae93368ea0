import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The package root (where package.json, views/ and public/ are), from app/ or from dist/app/. */
function findPackageRoot (from: string): string {
  let dir = from
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${from}`)
    dir = parent
  }
  return dir
}

export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)))
export const VIEWS_DIR = path.join(PACKAGE_ROOT, 'views')
export const PUBLIC_DIR = path.join(PACKAGE_ROOT, 'public')
