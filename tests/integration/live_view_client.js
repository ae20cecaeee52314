// SPDX-License-Identifier: Apache-2.0
// A real WebRTC receiver for chvm's live view: Debian's chromium, driven by
// playwright-core, opens the viewer page the guest serves (the URL `chvm run
// --live-view` prints) and keeps it open for its whole life, so the same
// page can be watched again after a standby and restore.
// Commands, one per line on stdin; each answers one JSON line on stdout:
//   watch PNG [SECONDS]  wait for a frame decoded after the command, then
//                        sample getStats for SECONDS (default 5) once a second;
//                        save the video to PNG and give the mean colour of the
//                        middle of the frame
//   quit
// Usage: node live_view_client.js VIEWER_URL [timeout_ms]
'use strict';
const { chromium } = require('playwright-core');
const readline = require('readline');

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// A frame decoded after the watch began: on the same connection, or on a
// new one (its counts start again from 0).
const fresh = (s, s0) => s.videoWidth > 0 && (s.connects !== s0.connects ? s.framesDecoded > 0
                                                                           : s.framesDecoded > s0.framesDecoded);

async function watch(page, png, seconds, timeout) {
  const t0 = Date.now();
  const s0 = await page.evaluate(() => window.stats());
  let s = s0;
  while (!fresh(s, s0)) {
    if (Date.now() - t0 > timeout)
      throw new Error('no video after ' + timeout + ' ms: ' + JSON.stringify(s));
    await sleep(100);
    s = await page.evaluate(() => window.stats());
  }
  const newFrameMs = Date.now() - t0;
  const samples = [s];
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    samples.push(await page.evaluate(() => window.stats()));
  }
  const a = samples[0], b = samples[samples.length - 1];
  const dt = (b.now - a.now) / 1000;
  await page.locator('video').screenshot({ path: png, timeout });
  // The mean colour of a 40x40 square in the middle of the received frame.
  const centerRgb = await page.evaluate(() => {
    const v = document.querySelector('video');
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const d = g.getImageData(c.width / 2 - 20, c.height / 2 - 20, 40, 40).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < d.length; i += 4) for (let k = 0; k < 3; k++) sum[k] += d[i + k];
    return sum.map((x) => Math.round(x / (d.length / 4)));
  });
  return {
    new_frame_ms: newFrameMs, first_frame_ms: b.firstFrameMs,
    video_width: b.videoWidth, video_height: b.videoHeight,
    frames: samples.map((x) => x.framesDecoded),
    // Under emulation a guest sends a few frames a second: rising means a
    // new frame in every 2 s of the sampling, on one connection.
    rising: samples.every((x) => x.connects === a.connects) &&
            samples.every((x, i) => i < 2 || x.framesDecoded > samples[i - 2].framesDecoded),
    fps: (b.framesDecoded - a.framesDecoded) / dt,
    kbps: (8 * (b.bytesReceived - a.bytesReceived)) / dt / 1000,
    connects: b.connects, connected_at: b.connectedAt, state: b.state, screenshot: png,
    center_rgb: centerRgb,
  };
}

async function main() {
  const url = process.argv[2];
  const timeout = Number(process.argv[3] || 120000);
  if (!url) throw new Error('usage: live_view_client.js VIEWER_URL [timeout_ms]');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required',
           '--disable-features=WebRtcHideLocalIpsWithMdns'],
  });
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const t0 = Date.now();
  await page.goto(url, { timeout });
  console.log(JSON.stringify({ opened_ms: Date.now() - t0 }));
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const [cmd, png, seconds] = line.trim().split(/\s+/);
    if (cmd === 'quit') break;
    if (cmd !== 'watch' || !png) {
      console.log(JSON.stringify({ error: 'bad command: ' + line }));
      continue;
    }
    try {
      console.log(JSON.stringify(await watch(page, png, Number(seconds || 5), timeout)));
    } catch (e) {
      console.log(JSON.stringify({ error: String(e) }));
    }
  }
  await browser.close();
}

main().then(() => process.exit(0), (e) => {
  console.error(String(e && e.stack || e));
  process.exit(1);
});
