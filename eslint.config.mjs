import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.data/**', 'coverage/**', '**/*.js', '**/*.mjs', 'admin-ui/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration through @app/config (libs/config is the only place that reads process.env).' },
      ],
    },
  },
  {
    files: ['libs/config/**', 'test/**', 'apps/cli/src/main.ts', 'libs/health/src/health.controller.ts', 'bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
