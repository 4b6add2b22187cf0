// Loads a page that embeds @tinybirdco/flock.js in Debian's headless Chromium (driven by playwright-core) and
// waits for the tracker's POST /v0/events calls to be answered. Prints one JSON object on stdout:
// {"events": [{"method", "url", "status", "requestHeaders", "postData"}], "console": [...], "pageErrors": [...]}
// Usage: node flock_page.mjs '{"page": "<url>", "customEvent": true, "timeoutMs": 20000}'
import { chromium } from "playwright-core";

const config = JSON.parse(process.argv[2]);
const expected = config.customEvent ? 2 : 1;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const result = { events: [], console: [], pageErrors: [], failed: [] };
try {
  const context = await browser.newContext();
  // flock.js skips tracking when navigator.webdriver is true (automation); a real visitor's browser says false.
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "webdriver", { get: () => false });
  });
  const page = await context.newPage();
  page.on("console", (message) => result.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => result.pageErrors.push(String(error)));
  page.on("requestfailed", (request) => result.failed.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`));
  const answered = [];
  page.on("response", async (response) => {
    const request = response.request();
    if (!request.url().includes("/v0/events")) return;
    answered.push({
      method: request.method(),
      url: request.url(),
      status: response.status(),
      requestHeaders: await request.allHeaders(),
      responseHeaders: await response.allHeaders(),
      postData: request.postData(),
    });
  });
  await page.goto(config.page, { waitUntil: "load" });
  const deadline = Date.now() + (config.timeoutMs ?? 20000);
  while (answered.length < 1 && Date.now() < deadline) await page.waitForTimeout(100);
  if (config.customEvent) {
    await page.evaluate(() => window.Tinybird.trackEvent("signup_click", { plan: "pro", email: "someone@example.com" }));
  }
  while (answered.length < expected && Date.now() < deadline) await page.waitForTimeout(100);
  result.events = answered;
  result.cookies = await context.cookies();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
