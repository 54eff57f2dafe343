// ESLint for the TypeScript of src/, test/ and bench/ with typescript-eslint's type-checked
// rules (recommendedTypeChecked): a floating promise in a daemon is a silent failure nothing
// else catches. Layout is Prettier's job (.prettierrc), C++ is clang-format's (.clang-format).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', '.e2e-cache/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      // tsconfig.test.json: the one type check of src/, test/ and bench/ together.
      parserOptions: { project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Named although the recommended set has them: they are why the linter is here. A promise
      // is awaited, returned, handled, or deliberately dropped with `void` (ignoreVoid, the
      // default: `void p` is the visible "nobody waits for this" marker).
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // `_` marks an argument a callback must accept but does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests read JSON replies (QMP, the control socket) whose shape is what the test asserts,
    // and their doubles implement async interfaces without awaiting anything: the `any` and
    // require-await rules would only add casts there. The promise rules stay on.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Plain JavaScript (this file, test fixtures' loader hooks, bench helpers): no types to check.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      parserOptions: { project: false },
      globals: Object.fromEntries(
        ['process', 'console', 'Buffer', 'URL', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate'].map(
          (g) => [g, 'readonly'],
        ),
      ),
    },
  },
);
