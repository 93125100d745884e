// Whether the built console (dist/admin-ui) is missing or older than any file under admin-ui/.
// Used by scripts/build-if-needed.js (npm start) and by the admin console tests.
const { existsSync, readdirSync, statSync } = require('node:fs');
const path = require('node:path');

const UI_SOURCES = __dirname;
const UI_MARKER = path.join(__dirname, '..', 'dist', 'admin-ui', 'index.html');

function newestFile(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestFile(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function uiBuildIsStale() {
  return !existsSync(UI_MARKER) || newestFile(UI_SOURCES) > statSync(UI_MARKER).mtimeMs;
}

module.exports = { uiBuildIsStale, UI_MARKER };
