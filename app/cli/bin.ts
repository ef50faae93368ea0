#!/usr/bin/env node
import { main } from './main.js'

const code = await main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env })
if (code !== undefined) process.exitCode = code
