// The operations console in a real headless Chromium (issue 24): a running instance under an API load, with
// a dead letter and a sink reject; the test logs in through the page's form, waits for every view to be
// drawn from live data (partition grid, instances, six flow charts, topology graph, dead letters, sink
// rejects, an account lookup; a teller is refused at the form), then starts a second instance and waits for the grid to show partitions
// moving to it. The page must log no error. Screenshots go to a temporary folder (the path is printed);
// with UPDATE_CONSOLE_SCREENSHOTS=1 they are also copied to docs/console/ (the ones the README shows).
//
// The browser is Debian's chromium package (CHROMIUM_PATH, default /usr/bin/chromium; `.ci/run` installs
// it). Without it this test fails and says how to install it: it is never skipped.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, describe, expect, it } from 'vitest';
import { PASSWORD, waitReady } from '../http/stack.ts';
import { ApiLoad, type ConsoleStack, forgeCreditLeg, startConsoleStack, unreadableOutcome } from './support.ts';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const VIEW_TIMEOUT_MS = 30_000;
const DOCS_DIR = path.resolve(import.meta.dirname, '../../../docs/console');

let setup: ConsoleStack | undefined;
let load: ApiLoad | undefined;
let browser: Browser | undefined;

afterAll(async () => {
  await browser?.close();
  await load?.stop();
  await setup?.stack.cleanup();
});

/** Waits until `predicate` (run in the page) is true, naming what was awaited when it times out. */
async function waitInPage(page: Page, what: string, predicate: string, timeoutMs = VIEW_TIMEOUT_MS): Promise<void> {
  try {
    await page.waitForFunction(predicate, { timeout: timeoutMs, polling: 250 });
  } catch (error) {
    throw new Error(`the console did not show ${what} within ${timeoutMs} ms (${(error as Error).message})`);
  }
}

describe('the operations console in Chromium', () => {
  it('should log in, draw every view from a running instance under load and show partitions moving when a second instance starts', async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `no Chromium at ${CHROMIUM}: install Debian's chromium package (apt-get install -y chromium; .ci/run does it) or set CHROMIUM_PATH`,
      );
    setup = await startConsoleStack('consoleui');
    const stack = setup.stack;
    const first = stack.instances[0]!.http!.url;
    await waitReady(first);
    load = new ApiLoad(() => first, setup.tokens.teller, setup.accounts);
    await forgeCreditLeg(stack, setup.accounts[1]!);
    await unreadableOutcome(stack);

    const shots = await mkdtemp(path.join(os.tmpdir(), 'bankstream-console-'));
    console.log(`console screenshots: ${shots}`);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container has no user namespace for Chromium's sandbox.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1440, height: 900 });
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => errors.push(`page: ${(error as Error).message}`));
    page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));

    await page.goto(`${first}/console`, { waitUntil: 'load' });
    // A teller logs in fine but is not let into the console.
    await page.type('#username', 'teller1');
    await page.type('#password', PASSWORD);
    await page.click('#login button[type=submit]');
    await waitInPage(
      page,
      'the refusal of a teller',
      `document.getElementById('login-error').textContent.includes('needs an admin')`,
    );
    expect(await page.$eval('#app', (app) => (app as { hidden: boolean }).hidden)).toBe(true);
    await page.$eval('#username', (input) => {
      (input as { value: string }).value = '';
    });
    await page.$eval('#password', (input) => {
      (input as { value: string }).value = '';
    });
    await page.type('#username', 'admin1');
    await page.type('#password', PASSWORD);
    await page.click('#login button[type=submit]');

    // Cluster: every partition running on c1, one instance in the table.
    await waitInPage(
      page,
      'four running partitions on c1',
      `document.querySelectorAll('#partition-grid .cell[data-state="running"][data-owner="c1"]').length === 4`,
    );
    await waitInPage(
      page,
      'the instance table',
      `document.querySelectorAll('#instances tbody tr[data-instance]').length === 1`,
    );
    // Flow: six charts, each with a few samples drawn on a canvas.
    await waitInPage(
      page,
      'six flow charts with samples',
      `[...document.querySelectorAll('#charts .chart')].filter((c) => Number(c.dataset.points) >= 3 && c.querySelector('canvas')).length === 6`,
    );
    // Topology: the bank processor, both sources, the stores, and the loop back to the credits topic.
    await waitInPage(
      page,
      'the topology graph',
      `!!document.querySelector('#topology-graph g.processor[data-node="bank"]') && document.querySelectorAll('#topology-graph g.store').length > 0 && !!document.querySelector('#topology-graph path.edge.loop')`,
    );
    // Dead letters and sink rejects.
    await waitInPage(page, 'a dead letter', `document.querySelectorAll('#dlq tbody tr:not(.empty)').length > 0`);
    await waitInPage(page, 'a sink reject', `document.querySelectorAll('#rejects tbody tr.unresolved').length > 0`);
    const letter = await page.$eval('#dlq tbody tr', (row) => row.textContent ?? '');
    expect(letter).toContain(`${stack.prefix}-credits`);
    // Lookup: an account of the load, with its balance and history.
    await page.type('#account', setup.accounts[0]!);
    await page.click('#lookup-form button[type=submit]');
    await waitInPage(
      page,
      'the looked-up balance',
      `!!document.querySelector('#account-view dd[data-field="balance"]')`,
    );
    await waitInPage(
      page,
      'the account history',
      `document.querySelectorAll('#history tbody tr:not(.empty)').length > 0`,
    );
    const balance = await page.$eval('#account-view dd[data-field="balance"]', (dd) => dd.textContent ?? '');
    expect(balance).toMatch(/^\d+\.\d{2}$/);
    // The header names what to look at: here the sink reject (every partition runs).
    await waitInPage(
      page,
      'the sink reject in the header',
      `document.getElementById('health').textContent === '1 unresolved sink reject(s)'`,
    );
    await page.screenshot({ path: path.join(shots, 'console.png'), fullPage: true });

    // A second instance joins: partitions move to it, and the grid says so.
    await stack.start({ INSTANCE_ID: 'c2' }, { sink: false });
    await waitInPage(
      page,
      'partitions running on c2 after it joined',
      `document.querySelectorAll('#partition-grid .cell[data-state="running"][data-owner="c2"]').length > 0`,
      60_000,
    );
    await waitInPage(
      page,
      'a partition marked as moved from c1',
      `!!document.querySelector('#partition-grid .cell[data-moved-from="c1"]')`,
    );
    await waitInPage(
      page,
      'both instances in the table',
      `document.querySelectorAll('#instances tbody tr[data-instance]').length === 2`,
    );
    const owners = await page.$$eval('#partition-grid .cell', (cells) =>
      cells.map((c) => c.getAttribute('data-owner')),
    );
    expect(new Set(owners)).toEqual(new Set(['c1', 'c2']));
    await page.screenshot({ path: path.join(shots, 'console-scale-out.png'), fullPage: true });

    if (process.env['UPDATE_CONSOLE_SCREENSHOTS'] === '1') {
      await mkdir(DOCS_DIR, { recursive: true });
      for (const name of ['console.png', 'console-scale-out.png'])
        await copyFile(path.join(shots, name), path.join(DOCS_DIR, name));
    }
    expect(errors).toEqual([]);
  }, 110_000);
});
