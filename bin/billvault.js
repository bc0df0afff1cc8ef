#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npm ci` is the whole install.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/main/cli.ts');
const code = await runCli(process.argv);
if (code !== 0) process.exit(code);
