// SPDX-License-Identifier: Apache-2.0
// The soak's CDP client: playwright-core connects once to the endpoint and,
// once a second, evaluates an expression in the browser's first page,
// printing one JSON line per evaluation:
//   {"i": N, "ok": true, "value": V, "ms": LATENCY}
//   {"i": N, "ok": false, "error": "..."}
// It never reconnects: an evaluation that fails, or the connection ending,
// is a client-visible error.  An evaluation sent while the VM stands by
// waits for the restore (the tap keeps the TCP connection).  Ends on
// SIGTERM or when stdin closes.
// Usage: node cdp_ticker.js http://HOST:PORT [connect_timeout_ms]
'use strict';
const { chromium } = require('playwright-core');

async function main() {
  const endpoint = process.argv[2];
  const timeout = Number(process.argv[3] || 120000);
  if (!endpoint) throw new Error('usage: cdp_ticker.js http://HOST:PORT [connect_timeout_ms]');
  const browser = await chromium.connectOverCDP(endpoint, { timeout });
  let stopping = false;
  const stop = () => { stopping = true; };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
  browser.on('disconnected', () => {
    if (!stopping) console.log(JSON.stringify({ i: -1, ok: false, error: 'disconnected' }));
    process.exit(stopping ? 0 : 1);
  });
  const context = browser.contexts()[0] || (await browser.newContext());
  // The open tab: a new one is a new renderer, minutes under nested emulation.
  const page = context.pages()[0] || (await context.newPage());
  console.log(JSON.stringify({ i: 0, ok: true, value: 'connected', ms: 0 }));
  for (let i = 1; !stopping; i++) {
    const t0 = Date.now();
    try {
      const value = await page.evaluate((k) => k * 2 + 1, i);
      if (value !== i * 2 + 1) throw new Error('wrong answer ' + value);
      console.log(JSON.stringify({ i, ok: true, value, ms: Date.now() - t0 }));
    } catch (e) {
      console.log(JSON.stringify({ i, ok: false, error: String(e && e.message || e) }));
    }
    const left = 1000 - (Date.now() - t0);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  }
  process.exit(0);
}

main().catch((e) => {
  console.log(JSON.stringify({ i: -1, ok: false, error: String(e && e.stack || e) }));
  process.exit(1);
});
