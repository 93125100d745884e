import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}`.trim() };
}

// Jest transpiles without type checking, so the compiler and linters run here as tests: a type
// error or a lint finding fails the suite like any broken behaviour.
describe('static checks', () => {
  it('typechecks the whole tree (apps, libs, migrations, tests, bench) with TypeScript strict', () => {
    const { status, output } = run(process.execPath, [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      'tsconfig.json',
      '--noEmit',
    ]);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('passes eslint and prettier (npm run lint)', () => {
    const eslint = run(process.execPath, [
      path.join(ROOT, 'node_modules/eslint/bin/eslint.js'),
      '.',
    ]);
    expect(eslint.output).toBe('');
    const prettier = run(process.execPath, [
      path.join(ROOT, 'node_modules/prettier/bin/prettier.cjs'),
      '--check',
      '{apps,libs,migrations,test}/**/*.ts',
      '--log-level',
      'warn',
    ]);
    expect(prettier.output).toBe('');
    expect(prettier.status).toBe(0);
  });
});
