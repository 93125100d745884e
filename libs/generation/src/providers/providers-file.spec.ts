import { parseProvidersFile, ProvidersFileError } from './providers-file';

const env = (vars: Record<string, string>) => (name: string) => vars[name];

describe('PROVIDERS_FILE', () => {
  it('parses providers with defaults and keeps the pricing section for credits', () => {
    const { file, missingVars } = parseProvidersFile(
      `
providers:
  - name: primary
    kind: openai
    base_url: http://127.0.0.1:9001/v1
    api_key: \${PRIMARY_API_KEY}
    models: [gpt-4o-mini]
  - { name: mock, kind: mock, models: [mock-gpt], priority: 9, latency_ms: 20, error_rate: 0.5 }
pricing:
  - { model: gpt-4o-mini, per_request: 1 }
`,
      'test.yaml',
      env({ PRIMARY_API_KEY: 'sk-test' }),
    );
    expect(missingVars).toEqual([]);
    expect(file.providers[0]).toEqual({
      name: 'primary',
      kind: 'openai',
      base_url: 'http://127.0.0.1:9001/v1',
      api_key: 'sk-test',
      session_auth: 'none',
      priority: 1,
      enabled: true,
      models: ['gpt-4o-mini'],
      timeout_ms: 30000,
    });
    expect(file.providers[1]).toMatchObject({ priority: 9, latency_ms: 20, error_rate: 0.5 });
    expect(file.pricing).toEqual([{ model: 'gpt-4o-mini', per_request: 1 }]);
  });

  it('substitutes ${VAR} and ${VAR:-default} after parsing, reporting unset variables', () => {
    const { file, missingVars } = parseProvidersFile(
      `
providers:
  - name: local
    kind: openai
    base_url: \${URL:-http://127.0.0.1:11434/v1}
    api_key: \${UNSET_KEY}
    priority: \${PRIO}
    enabled: \${ON}
    models: ["\${MODEL}"]
`,
      'test.yaml',
      env({ PRIO: '3', ON: 'false', MODEL: 'llama3: {injected: true}' }),
    );
    expect(file.providers[0]).toMatchObject({
      base_url: 'http://127.0.0.1:11434/v1',
      api_key: '',
      priority: 3,
      enabled: false,
      // A value from the environment stays a string; it cannot add YAML structure.
      models: ['llama3: {injected: true}'],
    });
    expect(missingVars).toEqual(['UNSET_KEY']);
  });

  it('substitutes inside flow mappings, where ${VAR} would otherwise break the YAML', () => {
    const { file } = parseProvidersFile(
      `
providers:
  - { name: flow, kind: mock, models: [m], priority: \${PRIO}, timeout_ms: \${T:-900} }
pricing:
  - { model: m, per_request: \${PRICE} }
`,
      'flow.yaml',
      env({ PRIO: '4', PRICE: '5' }),
    );
    expect(file.providers[0]).toMatchObject({ priority: 4, timeout_ms: 900 });
    // Pricing values stay strings here; libs/credits reads them as numbers.
    expect(file.pricing).toEqual([{ model: 'm', per_request: '5' }]);
  });

  it.each([
    ['no providers', 'providers: []', /list at least one provider/],
    [
      'an unknown kind',
      'providers: [{ name: x, kind: grpc, models: [m] }]',
      /providers\[0\]\.kind: expected openai or mock/,
    ],
    [
      'openai without base_url',
      'providers: [{ name: x, kind: openai, models: [m] }]',
      /providers\[0\]\.base_url: required for kind openai/,
    ],
    ['no models', 'providers: [{ name: x, kind: mock, models: [] }]', /providers\[0\]\.models/],
    ['a typo in a key', 'providers: [{ name: x, kind: mock, models: [m], priorty: 2 }]', /priorty/],
    [
      'a bad error_rate',
      'providers: [{ name: x, kind: mock, models: [m], error_rate: 2 }]',
      /error_rate/,
    ],
    [
      'a duplicate name',
      'providers: [{ name: x, kind: mock, models: [m] }, { name: x, kind: mock, models: [n] }]',
      /used twice/,
    ],
    ['a bad name', 'providers: [{ name: "a b", kind: mock, models: [m] }]', /providers\[0\]\.name/],
    ['broken YAML', 'providers: [', /not valid YAML/],
  ])('refuses %s, naming the entry', (_name, yaml, message) => {
    expect(() => parseProvidersFile(yaml, 'p.yaml', env({}))).toThrow(ProvidersFileError);
    expect(() => parseProvidersFile(yaml, 'p.yaml', env({}))).toThrow(message);
  });

  it('ships a default file that loads', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { readFileSync } = require('node:fs') as typeof import('node:fs');
    const text = readFileSync(`${__dirname}/../../../../config/providers.yaml`, 'utf8');
    const { file } = parseProvidersFile(text, 'config/providers.yaml', env({}));
    expect(file.providers.map((p) => p.name)).toContain('mock');
    expect(file.pricing.length).toBeGreaterThan(0);
  });
});
