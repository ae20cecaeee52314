// SPDX-License-Identifier: Apache-2.0
// A real CDP session through a given DevTools endpoint (e.g. the local
// listener of `chvm agent forward`): connect with playwright-core, open a
// page on a data: URL, read its title.  Prints one JSON line; exit 1 on error.
// With SCREENSHOT (a .png path) it also saves a screenshot of the page and
// leaves the page open, printing its target id and URL for later checks.
// Usage: node cdp_client.js http://127.0.0.1:PORT [timeout_ms [SCREENSHOT]]
'use strict';
const { chromium } = require('playwright-core');

async function main() {
  const endpoint = process.argv[2];
  const timeout = Number(process.argv[3] || 60000);
  const screenshot = process.argv[4];
  if (!endpoint) throw new Error('usage: cdp_client.js http://127.0.0.1:PORT [timeout_ms]');
  const t0 = Date.now();
  const browser = await chromium.connectOverCDP(endpoint, { timeout });
  const connectMs = Date.now() - t0;
  const context = browser.contexts()[0] || (await browser.newContext());
  // With SCREENSHOT, the browser's open tab when there is one: a new tab
  // is a new renderer process, minutes under nested emulation.
  const page = (screenshot && context.pages()[0]) || (await context.newPage());
  const expected = 'chvm-forward-' + process.pid;
  await page.goto('data:text/html,<title>' + expected + '</title><p>forwarded</p>', { timeout });
  const title = await page.title();
  const text = await page.textContent('p');
  const out = { expected, title, text, version: browser.version(), connect_ms: connectMs };
  if (screenshot) {
    await page.screenshot({ path: screenshot, timeout });
    const cdp = await context.newCDPSession(page);
    const { targetInfo } = await cdp.send('Target.getTargetInfo');
    Object.assign(out, { screenshot, target_id: targetInfo.targetId, url: targetInfo.url });
  } else {
    await page.close();
  }
  // No browser.close(): over CDP that could end the guest's browser.
  console.log(JSON.stringify(out));
}

main().then(() => process.exit(0), (e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
