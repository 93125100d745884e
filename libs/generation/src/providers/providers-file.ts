import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { z } from 'zod';

/** Thrown at boot for a missing or malformed PROVIDERS_FILE; the message names the entry. */
export class ProvidersFileError extends Error {}

/** YAML values that went through `${VAR}` substitution arrive as strings; accept "5" for 5. */
const num = (schema: z.ZodNumber) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v),
    schema,
  );
const bool = z.preprocess(
  (v) => (v === 'true' ? true : v === 'false' ? false : v),
  z.boolean({ message: 'expected true or false' }),
);

export const PROVIDER_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;

const providerSchema = z
  .object({
    name: z.string().regex(PROVIDER_NAME, 'expected letters, digits, "-", "_" or "." (max 63)'),
    kind: z.enum(['openai', 'mock'], { message: 'expected openai or mock' }),
    base_url: z.string().url('expected an http(s) URL').optional(),
    api_key: z.string().optional(),
    session_auth: z
      .enum(['none', 'bearer', 'cookie'], { message: 'expected none, bearer or cookie' })
      .default('none'),
    priority: num(z.number().int().min(0).max(1_000_000)).default(1),
    enabled: bool.default(true),
    models: z.array(z.string().trim().min(1).max(200)).min(1, 'list at least one model'),
    timeout_ms: num(z.number().int().min(100).max(3_600_000)).default(30_000),
    // Built-in mock only: rehearse slow or failing upstreams.
    latency_ms: num(z.number().int().min(0).max(600_000)).optional(),
    chunk_delay_ms: num(z.number().int().min(0).max(60_000)).optional(),
    error_rate: num(z.number().min(0).max(1)).optional(),
    fail_status: num(z.number().int().min(400).max(599)).optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.kind === 'openai' && !p.base_url)
      ctx.addIssue({ code: 'custom', path: ['base_url'], message: 'required for kind openai' });
    if (p.kind === 'openai' && p.base_url && !/^https?:\/\//.test(p.base_url))
      ctx.addIssue({ code: 'custom', path: ['base_url'], message: 'expected an http(s) URL' });
  });

const fileSchema = z
  .object({
    providers: z.array(providerSchema).min(1, 'list at least one provider'),
    // Parsed by libs/credits; kept here as a list so the file has one schema owner per section.
    pricing: z.array(z.record(z.string(), z.unknown())).nullish(),
  })
  .strict();

export type ProviderDefinition = z.infer<typeof providerSchema>;

export interface ProvidersFile {
  path: string;
  providers: ProviderDefinition[];
  /** The raw `pricing:` entries (credits validates and uses them). */
  pricing: Record<string, unknown>[];
}

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const PLACEHOLDER = /__SY_ENV_(\d+)__/g;

interface EnvReference {
  name: string;
  fallback?: string;
}

/**
 * `${VAR}` and `${VAR:-default}` may appear anywhere a value can, flow style included
 * (`{ model: x, per_request: ${PRICE} }`, where the braces would otherwise break the YAML). Each
 * reference becomes a plain placeholder before parsing and its value is put back into the parsed
 * strings afterwards, so a value from the environment can never change the document's structure.
 */
export function protectEnvReferences(text: string): { text: string; references: EnvReference[] } {
  const references: EnvReference[] = [];
  const replaced = text.replace(ENV_REFERENCE, (_m, name: string, fallback?: string) => {
    references.push({ name, fallback });
    return `__SY_ENV_${references.length - 1}__`;
  });
  return { text: replaced, references };
}

export function substituteEnv(
  value: unknown,
  references: EnvReference[],
  lookup: (name: string) => string | undefined,
  missing: Set<string>,
): unknown {
  if (typeof value === 'string')
    return value.replace(PLACEHOLDER, (placeholder, index: string) => {
      const ref = references[Number(index)];
      if (!ref) return placeholder;
      const found = lookup(ref.name);
      if (found !== undefined && found !== '') return found;
      if (ref.fallback === undefined) missing.add(ref.name);
      return ref.fallback ?? '';
    });
  if (Array.isArray(value)) return value.map((v) => substituteEnv(v, references, lookup, missing));
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        substituteEnv(k, references, lookup, missing) as string,
        substituteEnv(v, references, lookup, missing),
      ]),
    );
  return value;
}

/** Relative paths are tried from the working directory, then from the project root. */
export function resolveProvidersPath(file: string): string {
  if (path.isAbsolute(file)) return file;
  const fromCwd = path.resolve(file);
  if (existsSync(fromCwd)) return fromCwd;
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, file);
    if (existsSync(path.join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  return fromCwd;
}

export function parseProvidersFile(
  text: string,
  source: string,
  lookup: (name: string) => string | undefined,
): { file: ProvidersFile; missingVars: string[] } {
  const protectedText = protectEnvReferences(text);
  let doc: unknown;
  try {
    doc = load(protectedText.text);
  } catch (err) {
    // js-yaml's first line says what and where ("bad indentation (2:1)"); a code excerpt follows.
    const reason = (err as Error).message.split('\n')[0];
    throw new ProvidersFileError(`${source}: not valid YAML (${reason})`);
  }
  const missing = new Set<string>();
  const substituted = substituteEnv(doc, protectedText.references, lookup, missing);
  const parsed = fileSchema.safeParse(substituted);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const where = issue.path
        .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
        .join('');
      return `${source}: ${where || '(file)'}: ${issue.message}`;
    });
    throw new ProvidersFileError(problems.join('\n'));
  }
  const names = new Set<string>();
  for (const p of parsed.data.providers) {
    if (names.has(p.name))
      throw new ProvidersFileError(`${source}: provider name '${p.name}' is used twice`);
    names.add(p.name);
  }
  return {
    file: { path: source, providers: parsed.data.providers, pricing: parsed.data.pricing ?? [] },
    missingVars: [...missing],
  };
}

export function loadProvidersFile(
  file: string,
  lookup: (name: string) => string | undefined,
): { file: ProvidersFile; missingVars: string[] } {
  const resolved = resolveProvidersPath(file);
  if (!existsSync(resolved))
    throw new ProvidersFileError(
      `${file} not found (looked at ${resolved}); see docs/configuration.md`,
    );
  return parseProvidersFile(readFileSync(resolved, 'utf8'), resolved, lookup);
}
