#!/usr/bin/env bash
# The official MCP clients the tests drive (tests/test_official_clients.py): the MCP Inspector CLI and the
# TypeScript SDK client, with the Node the Inspector needs (>= 22.19; the `node` npm package brings a pinned
# Node 22 binary, so the machine's own Node only has to run npm). Installed from the npm registry into
# tests/node/node_modules (git-ignored), exactly as tests/node/package-lock.json pins them.
# Idempotent: a stamp of the package files and this script skips npm when nothing changed.
# Exit status 3: npm is missing (the tests skip then, or fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/../tests/node"

stamp=node_modules/.sqlr1-setup
want="$(cat package.json package-lock.json ../../scripts/setup_node_clients.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && node_modules/.bin/node -e '' >/dev/null 2>&1; then
  echo "setup_node_clients: up to date (tests/node/node_modules)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup_node_clients: npm not found: install Node.js >= 18 with npm (https://nodejs.org)" >&2
  exit 3
fi
echo "setup_node_clients: installing the MCP Inspector, the TypeScript SDK and Node 22 (npm ci, tests/node)"
# The Inspector's engines field asks for Node 22 while npm itself may run on an older one: not an error here.
npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/node -e '
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 19)) { console.error(`Node ${process.version} is too old`); process.exit(1); }'
[ -f node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js ]
[ -f node_modules/@modelcontextprotocol/sdk/package.json ]
echo "$want" >"$stamp"
echo "setup_node_clients: done (Node $(node_modules/.bin/node -v), tests/node/node_modules)"
