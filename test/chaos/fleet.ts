/**
 * The processes a chaos run abuses: one matcher (`dist/cli.mjs server` on SQLite, on a fixed port so a
 * restarted matcher keeps its URL) and a fleet of real pilots (`dist/pilot.mjs`), each with a token
 * bound to its own stamp. Knows which pilot process is alive, frozen or killed, and how many times
 * each has said "connected" (its own log line), which is how a reconnection is seen from outside.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { runCli } from '../helpers/cli-process.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';
import { restCall } from '../helpers/rest.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

export type PilotState = 'alive' | 'frozen' | 'killed';

export interface FleetPilot {
  stamp: string;
  process: PilotProcess;
  state: PilotState;
}

export interface FleetOptions {
  dir: string;
  /** `server` options beyond data directory and address. */
  serverArgs: string[];
  /** `pilot` options beyond matcher, credentials, stamp and workdir. */
  pilotArgs: string[];
}

export class Fleet {
  readonly dataDir: string;
  readonly dbFile: string;
  readonly pilots: FleetPilot[] = [];
  #server: ServerProcess | null = null;
  #listen = '';
  #adminToken = '';
  #url = '';
  #options: FleetOptions;

  constructor(options: FleetOptions) {
    this.#options = options;
    this.dataDir = path.join(options.dir, 'data');
    this.dbFile = path.join(this.dataDir, 'pilothouse.sqlite');
  }

  get url(): string {
    return this.#url;
  }

  async startMatcher(): Promise<void> {
    this.#listen ||= `127.0.0.1:${await freePort()}`;
    this.#server = await startServerProcess({
      dataDir: this.dataDir,
      listen: this.#listen,
      args: this.#options.serverArgs,
    });
    this.#url = this.#server.url;
    this.#adminToken = (await readFile(path.join(this.dataDir, 'admin.token'), 'utf8')).trim();
  }

  async killMatcher(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#server?.child;
    this.#server = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }

  matcherLog(): string {
    return this.#server?.log() ?? '';
  }

  /** A REST call as the administrator; throws on a refusal or while the matcher is away. */
  async api(method: string, route: string, json?: unknown): Promise<any> {
    return restCall(this.#url, this.#adminToken, method, route, json);
  }

  /** The bytes of a GET as the administrator (e.g. an output sandbox). */
  async download(route: string): Promise<Buffer> {
    const response = await fetch(`${this.#url}${route}`, { headers: { authorization: `Bearer ${this.#adminToken}` } });
    if (!response.ok) throw new Error(`GET ${route}: ${response.status} ${await response.text()}`);
    return Buffer.from(await response.arrayBuffer());
  }

  async startPilot(stamp: string): Promise<FleetPilot> {
    const issued = await runCli(
      ['token', 'issue', '--data-dir', this.dataDir, '--kind', 'pilot', '--vo', 'local', '--stamp', stamp],
      {},
    );
    if (issued.code !== 0) throw new Error(`token issue failed: ${issued.stderr}`);
    const process = await spawnPilot({
      matcherUrl: this.#url,
      token: issued.stdout.trim(),
      args: ['--stamp', stamp, ...this.#options.pilotArgs],
    });
    const pilot: FleetPilot = { stamp, process, state: 'alive' };
    this.pilots.push(pilot);
    return pilot;
  }

  alivePilots(): FleetPilot[] {
    return this.pilots.filter((pilot) => pilot.state === 'alive');
  }

  async killPilot(pilot: FleetPilot): Promise<void> {
    pilot.state = 'killed';
    await pilot.process.stop('SIGKILL');
  }

  freeze(pilot: FleetPilot): void {
    pilot.state = 'frozen';
    pilot.process.child.kill('SIGSTOP');
  }

  thaw(pilot: FleetPilot): void {
    pilot.process.child.kill('SIGCONT');
    pilot.state = 'alive';
  }

  /** How many times this pilot has logged that it is connected (welcomed by the matcher). */
  static connections(pilot: FleetPilot): number {
    return pilot.process.log().split('"msg":"connected"').length - 1;
  }

  async stopAll(): Promise<void> {
    for (const pilot of this.pilots) {
      if (pilot.state === 'frozen') pilot.process.child.kill('SIGCONT');
      await pilot.process.stop('SIGKILL');
      pilot.state = 'killed';
    }
    await this.killMatcher('SIGTERM');
  }
}
