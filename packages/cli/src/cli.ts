#!/usr/bin/env node
// The `tcmu` binary. All logic lives in main.ts (importable and tested); this file only exits.
import { run } from './main.js';

// A reader that went away (`tcmu serve … | head -1`) must not crash the process: ignore EPIPE on stdout.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
});

const code = await run(process.argv.slice(2));
// Exit explicitly: a served device's ring waiter or a child's pipe must not keep a finished command alive.
// stdout/stderr are synchronous for files and pipes on Linux, and pino writes synchronously.
process.exit(code);
