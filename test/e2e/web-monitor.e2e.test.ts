/**
 * The web monitor in a real headless Chromium (Debian's, driven by playwright-core) against a real
 * matcher with a real pilot process, signing in through the authorization code flow at a real OIDC
 * provider run by the test (oidc-provider). Jobs are submitted through the CLI with the browser's
 * session and turn Done in the table without a reload; filters, sorting, paging, a bulk kill, the job
 * page with its output download, and the site mask (refused to a job administrator, done by a service
 * administrator) are exercised as a user would. Screenshots of the views go to test-artifacts/web/.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { runCli } from '../helpers/cli-process.ts';
import { startLoginRig, type LoginRig } from '../helpers/login-rig.ts';
import { spawnPilot, type PilotProcess } from '../helpers/pilot-process.ts';

const require = createRequire(import.meta.url);
/** The part of axe-core's browser API the accessibility check calls. */
interface AxeRunner {
  run(
    context: unknown,
    options: unknown,
  ): Promise<{ violations: { id: string; impact: string | null; nodes: { target: string[] }[] }[] }>;
}

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((file) => existsSync(file));
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/web/', import.meta.url));

let rig: LoginRig;
let browser: Browser;
let pilot: PilotProcess;
let context: BrowserContext;
let page: Page;
let navigations = 0;

before(async () => {
  assert.ok(CHROMIUM, 'Chromium is missing: run scripts/provision.sh');
  await mkdir(ARTIFACTS, { recursive: true });
  // Schedules firing every 2 s, for the Schedules view.
  rig = await startLoginRig({ raw: { scheduleMinIntervalSec: 1 } });
  pilot = await spawnPilot({
    matcherUrl: rig.m.url,
    token: await rig.m.pilotToken('vo-a'),
    args: ['--idle-timeout-sec', '600'],
  });
  // Root in CI: Chromium's own sandbox needs an unprivileged user, so it is turned off here.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1366, height: 800 } });
  page = await context.newPage();
});
after(async () => {
  await browser?.close();
  await pilot?.stop();
  await rig?.close();
});

/** Signs in at the IdP's pages as `login` from the monitor's sign-in page. */
async function signIn(target: Page, login: string, scope = ''): Promise<void> {
  await target.goto(`${rig.m.url}/ui/jobs`);
  if (scope) await target.getByLabel(/VO and group/).fill(scope);
  await target.getByRole('button', { name: 'Sign in' }).click();
  await target.locator('input[name="login"]').fill(login);
  await target.locator('input[name="password"]').fill('any');
  await target.getByRole('button', { name: 'Sign-in' }).click();
  await target.getByRole('button', { name: 'Continue' }).click();
  await target.getByTestId('who').waitFor();
}

const sessionToken = (target: Page): Promise<string> =>
  target.evaluate(() => {
    const storage = (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } })
      .sessionStorage;
    return (JSON.parse(storage.getItem('pilothouse.session') ?? '{}') as { accessToken: string }).accessToken;
  });

async function submitAs(token: string, jobs: Record<string, unknown>[]): Promise<number[]> {
  const file = path.join(rig.work, `jobs-${Date.now()}.json`);
  await writeFile(file, JSON.stringify(jobs));
  const result = await runCli(['submit', file, '--json'], { PILOTHOUSE_MATCHER: rig.m.url, PILOTHOUSE_TOKEN: token });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout).jobIds as number[];
}

async function apiGet<T>(token: string, route: string): Promise<T> {
  const response = await fetch(`${rig.m.url}${route}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, route);
  return (await response.json()) as T;
}

const statusCell = (target: Page, jobId: number) =>
  target.locator(`tr[data-job-id="${jobId}"] td[data-column="status"]`);

describe('web monitor', () => {
  let jobIds: number[] = [];
  let pilotIdShown = '';
  let step = 0;
  // The page as each step left it: what a failure looked like, kept with the test's artifacts.
  afterEach(async () => {
    step += 1;
    await page.screenshot({ path: path.join(ARTIFACTS, `step-${step}.png`), fullPage: true }).catch(() => undefined);
  });

  it('signs in through the identity provider (code flow with PKCE) and lands on the Job Monitor', async () => {
    await signIn(page, 'carol', 'vo:vo-a group:vo-a_prod');
    assert.match(await page.getByTestId('who').innerText(), /carol · vo-a \/ vo-a_prod/);
    assert.equal(new URL(page.url()).pathname, '/ui/jobs');
    await page
      .getByTestId('live')
      .filter({ hasText: /^live$/ })
      .waitFor();
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) navigations += 1;
    });
  });

  it('jobs submitted through the CLI turn Done in the table without a reload', async () => {
    const token = await sessionToken(page);
    const sleeper = {
      executable: '/bin/sh',
      arguments: ['-c', 'echo hello-from-web; sleep 1; echo done > out.txt'],
      outputSandbox: ['out.txt'],
      name: 'web-output',
    };
    const quick = Array.from({ length: 29 }, (_, i) => ({ executable: 'true', name: `quick-${i}` }));
    jobIds = await submitAs(token, [sleeper, ...quick]);
    const before = navigations;
    await page.getByRole('button', { name: /^Job/ }).first().waitFor();
    for (const id of [jobIds[0] as number, jobIds.at(-1) as number]) {
      await statusCell(page, id).filter({ hasText: 'Done' }).waitFor({ timeout: 60_000 });
    }
    assert.equal(navigations, before, 'the page was never reloaded');
    await page.screenshot({ path: path.join(ARTIFACTS, 'job-monitor.png'), fullPage: true });
  });

  it('filters, sorts and pages on the server', async () => {
    await page.getByLabel('Filter column').selectOption('name');
    await page.getByLabel('Filter operator').selectOption('like');
    await page.getByLabel('Filter value').fill('quick-%');
    await page.getByRole('button', { name: 'Add filter' }).click();
    await page.getByLabel('per page').selectOption('25');
    await page.getByTestId('range').filter({ hasText: '1–25 of 29' }).waitFor();
    assert.match(page.url(), /f=name%7Clike%7Cquick-%25/, 'the filter is in the URL');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByTestId('range').filter({ hasText: '26–29 of 29' }).waitFor();
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.getByRole('button', { name: /^Job/ }).click(); // by id, descending (the default) → ascending
    await page.locator('th[aria-sort="ascending"]').waitFor();
    // Ascending by id: the first quick job heads the table once the server's answer is in.
    await page.locator(`tbody tr:first-child[data-job-id="${jobIds[1]}"]`).waitFor();
    // A shared link shows the same view (a new tab signs in first: here with the same token).
    const shared = await context.newPage();
    await shared.goto(page.url());
    await shared.getByText('Use a token').click();
    await shared.getByLabel(/A token from/).fill(await sessionToken(page));
    await shared.getByRole('button', { name: 'Use this token' }).click();
    await shared.getByTestId('range').filter({ hasText: '1–25 of 29' }).waitFor();
    await shared.close();
    await page.getByRole('button', { name: /Remove filter/ }).click();
    await page.getByRole('link', { name: 'Jobs', exact: true }).click(); // back to the default view
  });

  it('a selection is killed with a result per job; the summary bars filter the table', async () => {
    const token = await sessionToken(page);
    const waiting = await submitAs(
      token,
      [0, 1].map((i) => ({ executable: 'true', name: `stuck-${i}`, requirements: { sites: ['Nowhere'] } })),
    );
    for (const id of waiting) await statusCell(page, id).filter({ hasText: 'Waiting' }).waitFor();
    for (const id of waiting) await page.getByLabel(`Select job ${id}`).check();
    await page.getByRole('button', { name: 'Kill' }).click();
    const results = page.getByTestId('bulk-results');
    await results.filter({ hasText: 'kill: 2 done, 0 refused' }).waitFor();
    for (const id of waiting) await statusCell(page, id).filter({ hasText: 'Killed' }).waitFor();
    await page.getByRole('button', { name: /^Filter Status = Killed/ }).click();
    await page.getByTestId('range').filter({ hasText: '1–2 of 2' }).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'job-monitor-filtered.png'), fullPage: true });
    await page.getByRole('button', { name: /Remove filter/ }).click();
  });

  it('a job page shows its history, its output tail, and downloads its output sandbox', async () => {
    const id = jobIds[0] as number;
    await page.getByRole('link', { name: String(id), exact: true }).click();
    await page.getByTestId('job-status').filter({ hasText: 'Done' }).waitFor();
    await page.getByTestId('stdout').filter({ hasText: 'hello-from-web' }).waitFor();
    assert.ok((await page.locator('section[aria-labelledby="history-title"] tbody tr').count()) >= 4);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download the output sandbox' }).click(),
    ]);
    const saved = path.join(rig.work, 'downloaded.tar.gz');
    await download.saveAs(saved);
    const bytes = await readFile(saved);
    assert.deepEqual([...bytes.subarray(0, 2)], [0x1f, 0x8b], 'a gzip archive');
    await page.screenshot({ path: path.join(ARTIFACTS, 'job-page.png'), fullPage: true });
  });

  it('a task queue says why nothing takes it; its job administrator pauses, resumes and boosts it', async () => {
    const token = await sessionToken(page);
    const [stuck] = await submitAs(token, [
      { executable: 'true', name: 'tq-stuck', requirements: { sites: ['Nowhere'] } },
    ]);
    const tqId = (await apiGet<{ taskQueueId: number }>(token, `/api/jobs/${stuck}`)).taskQueueId;
    await page.getByRole('link', { name: 'Task queues' }).click();
    await page.locator(`tr[data-tq-id="${tqId}"]`).waitFor();
    await page.getByRole('link', { name: String(tqId), exact: true }).click();
    await page.getByTestId('tq-why-idle').filter({ hasText: /sites/ }).waitFor();
    await page.getByLabel('Reason').fill('maintenance of the input data');
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByTestId('tq-state').filter({ hasText: 'paused' }).waitFor();
    assert.match(await page.getByTestId('tq-why-idle').innerText(), /paused by .*maintenance of the input data/);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByTestId('tq-state').filter({ hasText: 'active' }).waitFor();
    await page.getByRole('spinbutton', { name: 'Boost' }).fill('7');
    await page.getByRole('button', { name: 'Set boost' }).click();
    await page.getByTestId('tq-boost').filter({ hasText: /^7$/ }).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'task-queue.png'), fullPage: true });
    // Its jobs, one click away; killed so that the later views hold no waiting job.
    await page.getByTestId('tq-waiting').getByRole('link').click();
    await page.getByTestId('range').filter({ hasText: '1–1 of 1' }).waitFor();
    await page.getByLabel(`Select job ${stuck}`).check();
    await page.getByRole('button', { name: 'Kill' }).click();
    await page.getByTestId('bulk-results').filter({ hasText: 'kill: 1 done, 0 refused' }).waitFor();
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
  });

  it("a pilot's page shows its node, the jobs it ran and its own log", async () => {
    await page.getByRole('link', { name: 'Pilots' }).click();
    const row = page.locator('tbody tr[data-pilot-id]').first();
    await row.waitFor();
    await row.getByRole('link').click();
    await page.getByTestId('pilot-status').filter({ hasText: 'Running' }).waitFor();
    assert.doesNotMatch(await page.getByTestId('pilot-node').innerText(), /not connected/);
    await page
      .getByTestId('pilot-jobs')
      .getByRole('link', { name: String(jobIds[0]), exact: true })
      .waitFor();
    await page
      .getByTestId('pilot-log')
      .filter({ hasText: /\d\d:\d\d:\d\d\.\d{3} INFO / })
      .waitFor();
    assert.ok(Number(await page.getByTestId('pilot-jobs-matched').innerText()) >= jobIds.length);
    pilotIdShown = (await page.getByRole('heading', { level: 1 }).innerText()).split(/\s+/)[1] ?? '';
    await page.screenshot({ path: path.join(ARTIFACTS, 'pilot.png'), fullPage: true });
  });

  it('banning a site is refused to a job administrator and done by a service administrator', async () => {
    await page.getByRole('link', { name: 'Sites' }).click();
    await page.getByRole('textbox', { name: 'Site', exact: true }).fill('Site.Web');
    await page.getByLabel('Reason').fill('downtime');
    await page.getByRole('button', { name: 'Ban' }).first().click();
    await page
      .getByTestId('site-message')
      .filter({ hasText: /Site\.Web: .*/ })
      .waitFor();
    assert.match(await page.getByTestId('site-message').innerText(), /Site\.Web: .*ServiceAdministrator/);
    await page.getByLabel('Limit site').fill('Site.Web');
    await page.getByLabel('Job type').fill('User');
    await page.getByLabel('Max running').fill('1');
    await page.getByRole('button', { name: 'Set limit' }).click();
    await page
      .getByTestId('limit-message')
      .filter({ hasText: /Site\.Web \/ User: .*ServiceAdministrator/ })
      .waitFor();

    const adminContext = await browser.newContext();
    const admin = await adminContext.newPage();
    await admin.goto(`${rig.m.url}/ui/sites`);
    await admin.getByText('Use a token').click();
    await admin.getByLabel(/A token from/).fill(rig.m.adminToken);
    await admin.getByRole('button', { name: 'Use this token' }).click();
    await admin.getByRole('textbox', { name: 'Site', exact: true }).fill('Site.Web');
    await admin.getByLabel('Reason').fill('downtime');
    await admin.getByRole('button', { name: 'Ban' }).first().click();
    await admin.getByTestId('site-message').filter({ hasText: 'Site.Web: banned' }).waitFor();
    await admin.locator('td', { hasText: 'Site.Web' }).first().waitFor();
    await admin.getByLabel('Limit site').fill('Site.Web');
    await admin.getByLabel('Job type').fill('User');
    await admin.getByLabel('Max running').fill('3');
    await admin.getByRole('button', { name: 'Set limit' }).click();
    await admin.getByTestId('limit-message').filter({ hasText: 'Site.Web / User: at most 3 running' }).waitFor();
    await admin.getByTestId('running-limits').locator('td', { hasText: /^3$/ }).waitFor();
    await admin.screenshot({ path: path.join(ARTIFACTS, 'sites.png'), fullPage: true });
    await adminContext.close();
  });

  it('a normal user sees only their own jobs, in the table and live', async () => {
    const aliceContext = await browser.newContext();
    const alicePage = await aliceContext.newPage();
    await signIn(alicePage, 'alice');
    const token = await sessionToken(alicePage);
    const [own] = await submitAs(token, [{ executable: 'true', name: 'alice-own' }]);
    await statusCell(alicePage, own as number)
      .filter({ hasText: 'Done' })
      .waitFor({ timeout: 60_000 });
    const shown = await alicePage
      .locator('tbody tr[data-job-id]')
      .evaluateAll((rows) => rows.map((row) => Number(row.getAttribute('data-job-id'))));
    assert.deepEqual(shown, [own]);
    await alicePage.screenshot({ path: path.join(ARTIFACTS, 'job-monitor-normal-user.png'), fullPage: true });
    await aliceContext.close();
  });

  it('a schedule made through the CLI shows its runs, which link to their jobs; its owner pauses another', async () => {
    const token = await sessionToken(page);
    const file = path.join(rig.work, 'tick.json');
    await writeFile(file, JSON.stringify({ name: 'tick', executable: '/bin/echo', arguments: ['tick'] }));
    const env = { PILOTHOUSE_MATCHER: rig.m.url, PILOTHOUSE_TOKEN: token };
    const add = async (args: string[]) => {
      const result = await runCli(['schedule', 'add', file, '--json', ...args], env);
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout).id as number;
    };
    const ticking = await add(['--cron', '*/2 * * * * *', '--max-runs', '2', '--overlap', 'allow', '--name', 'tick']);
    const nightly = await add(['--cron', '0 3 * * *', '--tz', 'Europe/Paris', '--name', 'nightly']);
    await page.getByRole('link', { name: 'Schedules' }).click();
    const row = (id: number) => page.locator(`tr[data-schedule-id="${id}"]`);
    await row(nightly).waitFor();
    // The ticking one ends after its two runs, shown without a reload.
    await row(ticking).locator('td[data-column="state"]').filter({ hasText: 'ended' }).waitFor({ timeout: 20_000 });
    await row(ticking)
      .getByRole('link', { name: String(ticking) })
      .click();
    const runs = page.getByTestId('schedule-runs').locator('tbody tr');
    await runs.nth(1).waitFor();
    assert.equal(await runs.count(), 2);
    assert.match(await runs.first().innerText(), /submitted/);
    await runs.first().getByRole('link').click();
    await page.getByRole('heading', { level: 1, name: /^Job \d+/ }).waitFor();
    assert.match(await page.locator('dl.facts').innerText(), new RegExp(`schedule ${ticking}, slot \\d{4}-`));
    await page.goto(`${rig.m.url}/ui/schedules`);
    await page.getByRole('button', { name: `Pause schedule ${nightly}` }).click();
    await page
      .getByTestId('schedule-message')
      .filter({ hasText: `schedule ${nightly} paused` })
      .waitFor();
    await row(nightly).locator('td[data-column="state"]').filter({ hasText: 'paused' }).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'schedules.png'), fullPage: true });
  });

  it('every view passes the axe-core WCAG 2.1 A/AA rules (labels, contrast, landmarks, names) and fits a laptop screen', async () => {
    const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    const views = [
      ['/ui/jobs', 'Jobs'],
      [`/ui/job?id=${jobIds[0]}`, `Job ${jobIds[0]}`],
      ['/ui/task-queues', 'Task queues'],
      ['/ui/pilots', 'Pilots'],
      [`/ui/pilot?id=${encodeURIComponent(pilotIdShown)}`, `Pilot ${pilotIdShown}`],
      ['/ui/sites', 'Sites'],
      ['/ui/schedules', 'Schedules'],
    ];
    const found: string[] = [];
    await page.setViewportSize({ width: 1280, height: 720 });
    for (const [view, title] of views) {
      await page.goto(`${rig.m.url}${view}`);
      await page.getByRole('heading', { level: 1, name: new RegExp(`^${title}`) }).waitFor();
      // Evaluated through the DevTools protocol: the page's Content-Security-Policy does not apply.
      await page.evaluate(axeSource);
      const violations = await page.evaluate(async () => {
        const axe = (globalThis as unknown as { axe: AxeRunner }).axe;
        const outcome = await axe.run((globalThis as unknown as { document: unknown }).document, {
          runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
        });
        return outcome.violations.map(
          (v) =>
            `${v.id} (${v.impact}): ${v.nodes
              .map((n) => n.target.join(' '))
              .slice(0, 3)
              .join(', ')}`,
        );
      });
      found.push(...violations.map((line) => `${view}: ${line}`));
      // A laptop screen: nothing wider than the window (wide content scrolls inside its own box).
      const overflow = await page.evaluate(() => {
        const root = (
          globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }
        ).document.documentElement;
        return root.scrollWidth - root.clientWidth;
      });
      if (overflow > 0) found.push(`${view}: the page is ${overflow} px wider than a 1280 px window`);
    }
    assert.deepEqual(found, [], found.join('\n'));
  });

  it('is usable from the keyboard alone: Tab reaches the views and Enter opens one', async () => {
    await page.goto(`${rig.m.url}/ui/jobs`);
    await page.getByRole('heading', { level: 1, name: 'Jobs' }).waitFor();
    let focused = '';
    for (let presses = 0; presses < 10 && focused !== 'Pilots'; presses += 1) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(
        () =>
          (globalThis as unknown as { document: { activeElement: { textContent: string | null } | null } }).document
            .activeElement?.textContent ?? '',
      );
    }
    assert.equal(focused, 'Pilots', 'the navigation is reached by Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Pilots' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/ui/pilots');
  });

  it('a job administrator drains a pilot from its page; it leaves once idle', async () => {
    await page.goto(`${rig.m.url}/ui/pilot?id=${encodeURIComponent(pilotIdShown)}`);
    await page.getByRole('button', { name: 'Drain' }).click();
    await page
      .getByTestId('pilot-message')
      .filter({ hasText: /^draining/ })
      .waitFor();
    await page.getByTestId('pilot-status').filter({ hasText: 'Done' }).waitFor({ timeout: 30_000 });
  });
});
