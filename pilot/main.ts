/**
 * The pilot program: parses argv, runs the pilot, and is the only place that exits. dist/pilot.mjs
 * runs it through its loader (pilot/loader.ts), which compiles it with the node's code cache.
 * Exit codes: 0 normal end, 1 failure, 2 bad usage, 3 token refused by the matcher.
 */
import { CommanderError } from 'commander';
import { buildPilotCommand } from './cli.ts';
import { EXIT_CODES } from './run.ts';

async function main(): Promise<void> {
  const command = buildPilotCommand().name('pilot.mjs').exitOverride();
  try {
    await command.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage;
    } else {
      process.stderr.write(`pilot: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = EXIT_CODES.failure;
    }
  }
  process.exit(process.exitCode ?? EXIT_CODES.ok);
}

// The loader runs this file as CommonJS, where a module cannot await at its top level.
void main();
