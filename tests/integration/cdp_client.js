// SPDX-License-Identifier: Apache-2.0
// A real CDP session through a given DevTools endpoint (e.g. the local
// listener of `chvm agent forward`): connect with playwright-core, open a
// page on a data: URL, read its title.  Prints one JSON line; exit 1 on error.
// Usage: node cdp_client.js http://127.0.0.1:PORT [timeout_ms]
'use strict';
const { chromium } = require('playwright-core');

async function main() {
  const endpoint = process.argv[2];
  const timeout = Number(process.argv[3] || 60000);
  if (!endpoint) throw new Error('usage: cdp_client.js http://127.0.0.1:PORT [timeout_ms]');
  const t0 = Date.now();
  const browser = await chromium.connectOverCDP(endpoint, { timeout });
  const connectMs = Date.now() - t0;
  const context = browser.contexts()[0] || (await browser.newContext());
  const page = await context.newPage();
  const expected = 'chvm-forward-' + process.pid;
  await page.goto('data:text/html,<title>' + expected + '</title><p>forwarded</p>', { timeout });
  const title = await page.title();
  const text = await page.textContent('p');
  await page.close();
  // No browser.close(): over CDP that could end the guest's browser.
  console.log(JSON.stringify({ expected, title, text, version: browser.version(), connect_ms: connectMs }));
}

main().then(() => process.exit(0), (e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
