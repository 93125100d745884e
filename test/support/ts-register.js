// Lets a child process run the TypeScript sources without a build (tests that SIGKILL a real
// worker process): `node -r ./test/support/ts-register.js apps/gateway/src/worker.ts`.
// Transpile only, like ts-jest's isolatedModules: type errors are `npm run typecheck`'s job.
const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const ts = require('typescript');

const root = path.resolve(__dirname, '../..');
const tsconfig = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile).config;
const { options } = ts.convertCompilerOptionsFromJson(tsconfig.compilerOptions, root);
options.module = ts.ModuleKind.CommonJS;
options.sourceMap = false;
options.inlineSourceMap = true;
options.incremental = false;
const aliases = tsconfig.compilerOptions.paths;

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const alias = aliases[request];
  return resolve.call(this, alias ? path.join(root, alias[0]) : request, ...rest);
};

require.extensions['.ts'] = (module, filename) => {
  const source = fs.readFileSync(filename, 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions: options, fileName: filename });
  module._compile(outputText, filename);
};
