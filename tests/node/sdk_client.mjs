// The official MCP TypeScript SDK client (@modelcontextprotocol/sdk) against sqlr1, for
// tests/test_official_clients.py. It connects over stdio or streamable HTTP, discovers everything the
// server offers from its list results and uses all of it: every tool is called, every prompt got, every
// resource and resource template read, and completions are asked for every prompt argument and template
// variable. It prints one JSON summary on stdout: what it did, and every error and warning it met.
//
//   node sdk_client.mjs PLAN.json --http http://127.0.0.1:8765/mcp
//   node sdk_client.mjs PLAN.json --stdio /path/to/python -m sqlr1.mcp_server.cli.main serve
//
// PLAN.json: {"samples": {argument name: value}, "refusals": [{"name": tool, "arguments": {...}}],
//             "env": {variables for a stdio server}}
// A tool, prompt or template argument takes its value from `samples` by name; one without a sample takes
// the first completion the server offers (prompts, templates) or a value made from its JSON schema.
// Each refusal must come back as a readable isError result (not a protocol error).
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const errors = [];
const warnings = [];
const logs = [];
const summary = { transport: null, errors, warnings, logs };

// The SDK reports its own warnings (e.g. tool-name validation) through the console: count them.
for (const level of ["warn", "error"]) {
  console[level] = (...parts) => warnings.push(parts.map(String).join(" "));
}

function parseArgs(argv) {
  const [planPath, mode, ...rest] = argv;
  if (!planPath || !["--http", "--stdio"].includes(mode) || rest.length === 0) {
    throw new Error("usage: sdk_client.mjs PLAN.json (--http URL | --stdio COMMAND [ARGS...])");
  }
  return { plan: JSON.parse(readFileSync(planPath, "utf8")), mode, rest };
}

function transportFor(mode, rest, plan) {
  if (mode === "--http") {
    return new StreamableHTTPClientTransport(new URL(rest[0]));
  }
  const [command, ...args] = rest;
  const transport = new StdioClientTransport({ command, args, env: { ...process.env, ...(plan.env ?? {}) }, stderr: "pipe" });
  summary.serverStderr = "";
  transport.stderr?.on("data", (chunk) => (summary.serverStderr += chunk.toString()));
  return transport;
}

// Every page of a paginated list method.
async function listAll(method, key) {
  const items = [];
  let cursor;
  do {
    const page = await method(cursor ? { cursor } : {});
    items.push(...page[key]);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

// A value for one property of a JSON schema: its sample by name, else its default, enum, or a typed stand-in.
function valueFor(name, schema, samples) {
  if (name in samples) return samples[name];
  if (schema.default !== undefined && schema.default !== null) return schema.default;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  const variant = (schema.anyOf ?? schema.oneOf ?? []).find((s) => s.type !== "null");
  if (!type && variant) return valueFor(name, variant, samples);
  switch (type) {
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "boolean":
      return false;
    case "array":
      return [valueFor(name, schema.items ?? {}, samples)];
    case "object":
      return {};
    default:
      return "x";
  }
}

function toolArguments(tool, samples) {
  const props = tool.inputSchema?.properties ?? {};
  const required = new Set(tool.inputSchema?.required ?? []);
  const args = {};
  for (const [name, schema] of Object.entries(props)) {
    if (required.has(name) || name in samples) args[name] = valueFor(name, schema, samples);
  }
  return args;
}

// Run one client call; an exception is recorded as an error of `what` and gives undefined.
async function attempt(what, call) {
  try {
    return await call();
  } catch (err) {
    errors.push(`${what}: ${err?.message ?? String(err)}`);
    return undefined;
  }
}

const textOf = (content) =>
  (content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");

// Completions for each argument of `ref`, the others given as context; returns the chosen values.
async function completeAll(client, ref, names, samples, completions) {
  const chosen = {};
  for (const name of names) {
    if (name in samples) chosen[name] = String(samples[name]);
  }
  for (const name of names) {
    const context = Object.fromEntries(Object.entries(chosen).filter(([k]) => k !== name));
    for (const value of ["", String(samples[name] ?? "").slice(0, 2)]) {
      const result = await attempt(`completion/complete ${JSON.stringify(ref)} ${name}=${JSON.stringify(value)}`, () =>
        client.complete({ ref, argument: { name, value }, context: { arguments: context } }),
      );
      const values = result?.completion?.values ?? [];
      completions.push({ ref, argument: name, value, context, values, total: result?.completion?.total });
      if (!(name in chosen) && values.length > 0) chosen[name] = values[0];
    }
    if (!(name in chosen)) chosen[name] = "x";
  }
  return chosen;
}

async function main() {
  const { plan, mode, rest } = parseArgs(process.argv.slice(2));
  const samples = plan.samples ?? {};
  summary.transport = mode.slice(2);
  const client = new Client({ name: "sqlr1-official-sdk-check", version: "1.0.0" });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  await client.connect(transportFor(mode, rest, plan));

  const caps = client.getServerCapabilities() ?? {};
  summary.server = client.getServerVersion();
  summary.capabilities = caps;
  summary.instructions = client.getInstructions() ?? null;

  if (caps.logging) await attempt("logging/setLevel", () => client.setLoggingLevel("debug"));

  // Tools: every one, with its output checked against its schema by the SDK.
  const tools = caps.tools ? ((await attempt("tools/list", () => listAll((p) => client.listTools(p), "tools"))) ?? []) : [];
  await attempt("tools/list (caching output validators)", () => client.listTools());
  summary.tools = [];
  for (const tool of tools) {
    const args = toolArguments(tool, samples);
    let progress = 0;
    const result = await attempt(`tools/call ${tool.name}`, () =>
      client.callTool({ name: tool.name, arguments: args }, undefined, { onprogress: () => (progress += 1) }),
    );
    if (result?.isError) errors.push(`tools/call ${tool.name} ${JSON.stringify(args)}: isError: ${textOf(result.content)}`);
    summary.tools.push({
      name: tool.name,
      title: tool.title ?? null,
      arguments: args,
      isError: result?.isError ?? null,
      structured: result?.structuredContent !== undefined,
      hasOutputSchema: tool.outputSchema !== undefined,
      progress,
      text: textOf(result?.content).slice(0, 2000),
      structuredContent: result?.structuredContent ?? null,
    });
  }
  summary.refusals = [];
  for (const refusal of plan.refusals ?? []) {
    const result = await attempt(`tools/call ${refusal.name} (a refusal)`, () =>
      client.callTool({ name: refusal.name, arguments: refusal.arguments }),
    );
    if (result && !result.isError) errors.push(`tools/call ${refusal.name}: expected a refusal, got a result`);
    summary.refusals.push({
      name: refusal.name,
      isError: result?.isError ?? null,
      text: textOf(result?.content),
      structuredContent: result?.structuredContent ?? null,
    });
  }

  // Prompts and their argument completions.
  const completions = [];
  summary.completions = completions;
  summary.prompts = [];
  const prompts = caps.prompts ? ((await attempt("prompts/list", () => listAll((p) => client.listPrompts(p), "prompts"))) ?? []) : [];
  for (const prompt of prompts) {
    const names = (prompt.arguments ?? []).map((a) => a.name);
    const args = caps.completions
      ? await completeAll(client, { type: "ref/prompt", name: prompt.name }, names, samples, completions)
      : Object.fromEntries(names.map((n) => [n, String(samples[n] ?? "x")]));
    const result = await attempt(`prompts/get ${prompt.name}`, () => client.getPrompt({ name: prompt.name, arguments: args }));
    summary.prompts.push({ name: prompt.name, arguments: args, messages: result?.messages?.length ?? null });
  }

  // Resources: every listed one read, every template filled (completions, samples) and read.
  summary.resources = [];
  summary.templates = [];
  if (caps.resources) {
    const resources = (await attempt("resources/list", () => listAll((p) => client.listResources(p), "resources"))) ?? [];
    for (const resource of resources) {
      const result = await attempt(`resources/read ${resource.uri}`, () => client.readResource({ uri: resource.uri }));
      summary.resources.push({ uri: resource.uri, name: resource.name, contents: result?.contents?.length ?? null });
    }
    const templates =
      (await attempt("resources/templates/list", () => listAll((p) => client.listResourceTemplates(p), "resourceTemplates"))) ?? [];
    for (const template of templates) {
      const names = [...template.uriTemplate.matchAll(/\{[+#./;?&]?([^}]+)\}/g)].flatMap((m) => m[1].split(","));
      const ref = { type: "ref/resource", uri: template.uriTemplate };
      const args = caps.completions
        ? await completeAll(client, ref, names, samples, completions)
        : Object.fromEntries(names.map((n) => [n, String(samples[n] ?? "x")]));
      const uri = template.uriTemplate.replace(/\{[+#./;?&]?([^}]+)\}/g, (_, n) => encodeURIComponent(args[n]));
      const result = await attempt(`resources/read ${uri}`, () => client.readResource({ uri }));
      summary.templates.push({ uriTemplate: template.uriTemplate, uri, contents: result?.contents?.length ?? null });
    }
  }
  await client.close();
}

try {
  await main();
} catch (err) {
  errors.push(`fatal: ${err?.stack ?? String(err)}`);
}
process.stdout.write(JSON.stringify(summary) + "\n");
process.exit(0);
