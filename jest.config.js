/** @type {import('jest').Config} */
const path = require('node:path');

const libs = ['config', 'database', 'redis', 'observability', 'auth', 'sessions', 'circuit-breaker', 'rate-limit', 'generation', 'jobs', 'credits', 'health'];
const moduleNameMapper = Object.fromEntries(libs.map((lib) => [`^@app/${lib}$`, `<rootDir>/libs/${lib}/src`]));
// ts-jest in isolatedModules mode: transpile only (the typecheck is `npm run typecheck`).
const transform = {
  '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: '<rootDir>/tsconfig.json' }],
};

const common = { rootDir: __dirname, transform, moduleNameMapper, testEnvironment: 'node', setupFiles: ['reflect-metadata'] };

module.exports = {
  transform,
  globalSetup: path.join(__dirname, 'test/support/global-setup.ts'),
  globalTeardown: path.join(__dirname, 'test/support/global-teardown.ts'),
  reporters: ['default', path.join(__dirname, 'test/support/summary-reporter.js')],
  testTimeout: 60000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/libs/**/*.spec.ts', '<rootDir>/apps/**/*.spec.ts', '<rootDir>/bench/**/*.spec.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'] },
  ],
};
