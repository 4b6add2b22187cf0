// @tinybirdco/sdk against birdhouse: runs the named steps, printing one JSON object a line:
// {"step", "ok", "value"} or {"step", "ok": false, "error": {"name", "message", "statusCode", "response"}}.
// Usage: node sdk_scenario.mjs '<json config>' step [step …]
// config: {"url", "token", "ds", "readToken"?, "localUrl"?}
import { createClient, createJWT, createTinybirdApi, TinybirdApiError, TinybirdError } from "@tinybirdco/sdk";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const config = JSON.parse(process.argv[2]);
const steps = process.argv.slice(3);
const api = createTinybirdApi({ baseUrl: config.url, token: config.token });

function describeError(error) {
  return {
    name: error?.name,
    message: error?.message,
    statusCode: error?.statusCode,
    response: error?.response ?? null,
    isApiError: error instanceof TinybirdApiError,
    isClientError: error instanceof TinybirdError,
  };
}

const scenarios = {
  // ingest(): one row, wait=true by default; bigint → string into UInt64, Map → object into Map(String, String).
  ingest: () =>
    api.ingest(config.ds, {
      step: "ingest",
      id: 1,
      big: 18446744073709551615n,
      at: "2025-06-12 10:15:30.123",
      attrs: new Map([["plan", "pro"], ["region", "eu"]]),
      nested: { a: [1, 2], b: { c: "✓" } },
      tags: ["x", "y"],
    }),
  // ingestBatch(): several rows in one request, wait=true by default.
  ingestBatch: () =>
    api.ingestBatch(
      config.ds,
      [1, 2, 3].map((id) => ({
        step: "ingestBatch",
        id,
        big: BigInt(2) ** BigInt(60) + BigInt(id),
        at: `2025-06-12 10:15:3${id}.000`,
        attrs: { n: String(id) },
        tags: [],
      }))
    ),
  // An empty batch is answered client-side, nothing is sent.
  emptyBatch: () => api.ingestBatch(config.ds, []),
  // wait: false → 202, still a JSON body the SDK parses.
  noWait: () => api.ingest(config.ds, { step: "noWait", id: 1, at: "2025-06-12 10:15:30.000" }, { wait: false }),
  // A row that does not fit: counted as quarantined, still a success.
  quarantined: () => api.ingest(config.ds, { step: "quarantined", id: "not a number", at: "2025-06-12 10:15:30.000" }),
  // sql(): raw SQL as text/plain, no FORMAT → JSON; rows ingested with wait=true are visible at once.
  sql: () => api.sql(`SELECT step, id, toString(big) AS big, attrs, tags FROM ${config.ds} WHERE step IN ('ingest', 'ingestBatch') ORDER BY step, id`),
  // The typed client's datasources.ingest goes through the same path.
  clientIngest: () =>
    createClient({ baseUrl: config.url, token: config.token }).datasources.ingest(config.ds, {
      step: "clientIngest",
      id: 7,
      at: "2025-06-12 10:15:30.000",
    }),
  // createToken(): a static token with a scope string (JSON body, no expiration_time).
  createStaticToken: async () => {
    const created = await api.createToken({ name: `sdk_static_${Date.now()}`, scope: [`DATASOURCES:APPEND:${config.ds}`] });
    const appended = await api.ingest(config.ds, { step: "staticToken", id: 1, at: "2025-06-12 10:15:30.000" }, { token: created.token });
    let sqlError = null;
    try {
      await api.sql(`SELECT count() FROM ${config.ds}`, { token: created.token });
    } catch (error) {
      sqlError = describeError(error);
    }
    return { tokenPrefix: created.token.slice(0, 2), appended, sqlError };
  },
  // createJWT(): POST /v0/tokens/?expiration_time=… with JSON scopes → {"token": "<jwt>"}; the JWT then reads.
  createJWT: async () => {
    const { token } = await createJWT(
      { baseUrl: config.url, token: config.token },
      {
        name: "sdk_jwt",
        expiresAt: new Date(Date.now() + 3600_000),
        scopes: [{ type: "DATASOURCES:READ", resource: config.ds }],
      }
    );
    const result = await api.sql(`SELECT count() AS n FROM ${config.ds}`, { token });
    return { segments: token.split(".").length, rows: result.data };
  },
  // Error paths: a text/plain 403 from /v0/events, a JSON {"error"} from /v0/sql.
  errorInvalidToken: () => api.ingest(config.ds, { step: "x", id: 1, at: "2025-06-12 10:15:30.000" }, { token: "p.not-a-token" }),
  errorSql: () => api.sql("SELECT no_such_column FROM " + config.ds),
  errorClient: () =>
    createClient({ baseUrl: config.url, token: "p.not-a-token" }).datasources.ingest(config.ds, { step: "x", id: 1 }),
  // appendDatasource(): multipart field `csv` with an .ndjson file (format=ndjson from the extension).
  appendFile: async () => {
    const dir = mkdtempSync(join(tmpdir(), "sdk-append-"));
    const file = join(dir, "rows.ndjson");
    writeFileSync(file, ['{"step":"appendFile","id":1,"at":"2025-06-12 10:15:30.000"}', '{"step":"appendFile","id":2,"at":"2025-06-12 10:15:31.000"}'].join("\n") + "\n");
    return api.appendDatasource(config.ds, { file });
  },
  // Retries on 429 (opt-in): uses Retry-After, else X-RateLimit-Reset.
  retry429: async () => {
    const results = [];
    for (let id = 1; id <= 3; id++) {
      results.push(await api.ingest(config.ds, { step: "retry429", id, at: "2025-06-12 10:15:30.000" }, { maxRetries: 5 }));
    }
    return results;
  },
  // Without retries a 429 surfaces as an error with the text body.
  no429Retry: async () => {
    const errors = [];
    for (let id = 1; id <= 3; id++) {
      try {
        await api.ingest(config.ds, { step: "no429Retry", id, at: "2025-06-12 10:15:30.000" });
      } catch (error) {
        errors.push(describeError(error));
      }
    }
    return errors;
  },
  // Tinybird Local detection: the SDK asks http://localhost:7181/tokens; only the host is redirected to birdhouse.
  localTokens: async () => {
    const local = await import(new URL("./node_modules/@tinybirdco/sdk/dist/api/local.js", import.meta.url));
    const running = await local.isLocalRunning();
    const tokens = await local.getLocalTokens();
    return { running, keys: Object.keys(tokens).sort(), workspaceAdminMatches: tokens.workspace_admin_token === config.token };
  },
  // getOrCreateLocalWorkspace(): lists with admin_token, creates with user_token, lists again with admin_token.
  localWorkspace: async () => {
    const local = await import(new URL("./node_modules/@tinybirdco/sdk/dist/api/local.js", import.meta.url));
    const tokens = await local.getLocalTokens();
    const name = `Build_sdk_${Date.now()}`;
    const first = await local.getOrCreateLocalWorkspace(tokens, name);
    const again = await local.getOrCreateLocalWorkspace(tokens, name);
    return { created: first.wasCreated, reused: !again.wasCreated, sameId: first.workspace.id === again.workspace.id, hasToken: Boolean(first.workspace.token) };
  },
  // truncateDatasource(): any 2xx, optional JSON body.
  truncate: () => api.truncateDatasource(config.truncateDs),
};

if (config.localUrl) {
  // Redirect only the SDK's hard-coded Tinybird Local address to the birdhouse under test.
  const realFetch = globalThis.fetch;
  globalThis.fetch = (url, init) => realFetch(String(url).replace("http://localhost:7181", config.localUrl), init);
}

for (const step of steps) {
  const scenario = scenarios[step];
  if (!scenario) {
    console.log(JSON.stringify({ step, ok: false, error: { message: `unknown step ${step}` } }));
    continue;
  }
  try {
    const value = await scenario();
    console.log(JSON.stringify({ step, ok: true, value }, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
  } catch (error) {
    console.log(JSON.stringify({ step, ok: false, error: describeError(error) }));
  }
}
