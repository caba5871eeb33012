import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The browser's globals the page's modules may use (tsc's DOM library checks how they are used). */
const browserGlobals = Object.fromEntries(
  [
    'window', 'document', 'location', 'history', 'navigator', 'console', 'crypto', 'globalThis',
    'fetch', 'Headers', 'FormData', 'XMLHttpRequest', 'URL', 'URLSearchParams', 'CSS', 'CSSStyleSheet', 'Intl',
    'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval',
    'Node', 'Element', 'HTMLElement', 'HTMLAnchorElement', 'HTMLButtonElement', 'HTMLDialogElement', 'HTMLFieldSetElement', 'HTMLFormElement',
    'HTMLIFrameElement', 'HTMLImageElement', 'HTMLInputElement', 'HTMLLIElement', 'HTMLOListElement', 'HTMLScriptElement',
    'HTMLSelectElement', 'HTMLTableElement', 'HTMLTextAreaElement', 'SubmitEvent', 'KeyboardEvent', 'MessageEvent',
  ].map((name) => [name, 'readonly']),
);

export default tseslint.config(
  // The page's browser modules (api/public, plain JS checked by tsc through api/public/tsconfig.json) are linted too.
  { ignores: ['node_modules/**', '.botserver/**', '.test-run/**', '**/*.js', '!api/public/**/*.js', '**/*.cjs', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off' },
  },
  {
    files: ['api/public/**/*.js'],
    languageOptions: { sourceType: 'module', globals: browserGlobals },
  },
  {
    // widget.js runs on other sites as a classic script.
    files: ['api/public/widget.js'],
    languageOptions: { sourceType: 'script' },
  },
  {
    files: ['api/**/*.ts', 'workers/**/*.ts', 'adapters/**/*.ts', 'shared/**/*.ts'],
    rules: { 'no-console': 'error' },
  },
);
