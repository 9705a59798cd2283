/**
 * `pilothouse`: one command for users, administrators and operators. Each subcommand has --help;
 * client subcommands take --matcher, --token-file and --json. The only place that exits the process.
 */
import { Command, CommanderError } from 'commander';
import { buildPilotCommand } from '../pilot/cli.ts';
import { EXIT, reportError } from './exit.ts';
import {
  killCommand,
  deleteCommand,
  outputCommand,
  rescheduleCommand,
  statusCommand,
  submitCommand,
} from './commands/jobs.ts';
import { jobsCommand } from './commands/job-search.ts';
import { logsCommand } from './commands/logs.ts';
import { runCommand } from './commands/run.ts';
import { backupCommand } from './commands/backup.ts';
import { explainCommand, sitesCommand } from './commands/matching.ts';
import { priorityCommand } from './commands/job-priority.ts';
import { policyCommand } from './commands/policy.ts';
import { taskQueuesCommand } from './commands/task-queues.ts';
import { scheduleCommand } from './commands/schedules.ts';
import { pilotsCommand } from './commands/pilots.ts';
import { serverCommand } from './commands/server.ts';
import { siteDirectorCommand } from './commands/site-director.ts';
import { tokenCommand } from './commands/token.ts';
import { loginCommand, logoutCommand, whoamiCommand } from './commands/login.ts';
import { demoCommand, upCommand } from './commands/up.ts';

const program = new Command('pilothouse')
  .description('Pilothouse: pull-based workload management (matcher, pilots, site directors)')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError()
  // Options after a subcommand belong to it (`site-director status --matcher URL`).
  .enablePositionalOptions()
  .addCommand(serverCommand())
  .addCommand(buildPilotCommand())
  .addCommand(siteDirectorCommand())
  .addCommand(upCommand())
  .addCommand(demoCommand())
  .addCommand(submitCommand())
  .addCommand(statusCommand())
  .addCommand(jobsCommand())
  .addCommand(logsCommand())
  .addCommand(runCommand())
  .addCommand(outputCommand())
  .addCommand(killCommand())
  .addCommand(rescheduleCommand())
  .addCommand(deleteCommand())
  .addCommand(explainCommand())
  .addCommand(priorityCommand())
  .addCommand(taskQueuesCommand())
  .addCommand(scheduleCommand())
  .addCommand(policyCommand())
  .addCommand(sitesCommand())
  .addCommand(backupCommand())
  .addCommand(loginCommand())
  .addCommand(logoutCommand())
  .addCommand(whoamiCommand())
  .addCommand(tokenCommand())
  .addCommand(pilotsCommand());

// Usage errors in any subcommand must come back here (exit code 2), not end the process inside commander.
const overrideExits = (command: Command): void => {
  command.exitOverride();
  command.commands.forEach(overrideExits);
};
overrideExits(program);

try {
  await program.parseAsync(process.argv);
  process.exitCode = process.exitCode ?? EXIT.ok;
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    process.exitCode = reportError(error, process.argv.includes('--json'));
  }
}
