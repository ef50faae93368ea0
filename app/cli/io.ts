import { read } from 'read'

export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  env: NodeJS.ProcessEnv
}

/** Exit code 2: the command line itself is wrong (or the configuration is). */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** Exit code 1: the command was refused or failed. */
export class CommandError extends Error {
  override name = 'CommandError'
}

export function println (stream: NodeJS.WritableStream, line = ''): void {
  stream.write(line + '\n')
}

/**
 * A password from a prompt (typed twice, not echoed) when stdin is a terminal, or else the
 * first line of stdin, so scripts can pipe it: `echo "$PW" | quiesce user add ann --role member`.
 */
export async function readPassword (io: CliIo, prompt: string): Promise<string> {
  if (io.stdin.isTTY === true) {
    const first = await read({ prompt, silent: true, replace: '*', input: io.stdin, output: io.stderr })
    const again = await read({ prompt: 'Again: ', silent: true, replace: '*', input: io.stdin, output: io.stderr })
    if (first !== again) throw new CommandError('the two passwords differ')
    return first
  }
  let text = ''
  for await (const chunk of io.stdin) text += chunk.toString()
  const line = text.split(/\r?\n/)[0] ?? ''
  if (line === '') throw new CommandError('no password on stdin')
  return line
}
