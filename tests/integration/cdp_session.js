// SPDX-License-Identifier: Apache-2.0
// One long-lived CDP client of a chvm CDP endpoint, driven line by line so
// that a test can stand the VM by and restore it between commands while
// the same Browser and Page objects stay in use (no reconnect).
// Usage: node cdp_session.js playwright|puppeteer ENDPOINT [timeout_ms]
// On stdin, one command a line; on stdout, one JSON line each:
//   open          a new page on a data: URL -> {title}
//   eval EXPR     page.evaluate(EXPR) -> {value, ms}   (ms: send to answer)
//   burst N       N evaluations sent at once (i*i for i < N) -> {values}
//   shot PATH     a PNG screenshot of the page -> {bytes}
//   version       the browser's version -> {version}
//   quit
// Any error is {"error": "..."} (the test counts them); a lost connection
// ("disconnected") is reported on its own line as soon as it happens.
'use strict';
const readline = require('readline');
const fs = require('fs');

const kind = process.argv[2];
const endpoint = process.argv[3];
const timeout = Number(process.argv[4] || 300000);

function out(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

async function connect() {
  if (kind === 'playwright') {
    const { chromium } = require('playwright-core');
    const browser = await chromium.connectOverCDP(endpoint, { timeout });
    browser.on('disconnected', () => out({ event: 'disconnected' }));
    const context = browser.contexts()[0] || (await browser.newContext());
    return {
      browser,
      version: () => browser.version(),
      newPage: async () => {
        const p = await context.newPage();
        p.setDefaultTimeout(timeout);
        return p;
      },
    };
  }
  if (kind === 'puppeteer') {
    const puppeteer = require('puppeteer-core');
    const opts = { protocolTimeout: timeout, defaultViewport: null };
    if (endpoint.startsWith('ws://')) opts.browserWSEndpoint = endpoint;
    else if (new URL(endpoint).pathname.length > 1) {
      // puppeteer's browserURL asks /json/version at the server's root and
      // drops the path, so a chvm endpoint (http://ADDR:PORT/TOKEN) is given
      // to it as its ws:// URL, as `chvm cdp NAME` prints it.
      const r = await fetch(endpoint + '/json/version');
      if (!r.ok) throw new Error(`${endpoint}/json/version: HTTP ${r.status}`);
      opts.browserWSEndpoint = (await r.json()).webSocketDebuggerUrl;
    } else opts.browserURL = endpoint;
    const browser = await puppeteer.connect(opts);
    browser.on('disconnected', () => out({ event: 'disconnected' }));
    return {
      browser,
      version: () => browser.version(),
      newPage: async () => {
        const p = await browser.newPage();
        p.setDefaultTimeout(timeout);
        return p;
      },
    };
  }
  throw new Error('kind must be playwright or puppeteer');
}

async function main() {
  const t0 = Date.now();
  const c = await connect();
  out({ connected: true, ms: Date.now() - t0 });
  let page = null;
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const sp = line.indexOf(' ');
    const cmd = sp < 0 ? line : line.slice(0, sp);
    const arg = sp < 0 ? '' : line.slice(sp + 1);
    const t = Date.now();
    try {
      if (cmd === 'quit') break;
      else if (cmd === 'open') {
        page = await c.newPage();
        const title = 'chvm-endpoint-' + process.pid;
        await page.goto('data:text/html,<title>' + title + '</title><p id=p>endpoint</p>');
        out({ title: await page.title(), ms: Date.now() - t });
      } else if (cmd === 'eval') {
        const value = await page.evaluate(arg);
        out({ value, ms: Date.now() - t });
      } else if (cmd === 'burst') {
        const n = Number(arg);
        const values = await Promise.all([...Array(n).keys()].map((i) => page.evaluate(`${i}*${i}`)));
        out({ values, ms: Date.now() - t });
      } else if (cmd === 'shot') {
        const buf = await page.screenshot({ path: arg });
        out({ bytes: fs.statSync(arg).size || buf.length, ms: Date.now() - t });
      } else if (cmd === 'version') {
        out({ version: await c.version(), ms: Date.now() - t });
      } else out({ error: 'unknown command ' + cmd });
    } catch (e) {
      out({ error: String((e && e.message) || e), ms: Date.now() - t });
    }
  }
  // No browser.close(): over CDP that would end the guest's browser.
  process.exit(0);
}

main().catch((e) => {
  out({ error: String((e && e.stack) || e) });
  process.exit(1);
});
