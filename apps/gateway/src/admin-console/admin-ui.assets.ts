import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export interface UiAsset {
  body: Buffer;
  /** Present when compressing saved something worth sending. */
  gzip?: Buffer;
  contentType: string;
  etag: string;
  cacheControl: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** Vite puts a content hash in every file name under assets/: those never change. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html names the current hashed files: always revalidate (cheap with the ETag). */
const REVALIDATE = 'no-cache';
const GZIP_MIN_BYTES = 1024;

/**
 * The built console: dist/admin-ui next to the compiled gateway (dist/apps/gateway/...), or the
 * repository's dist/admin-ui when the gateway runs from its TypeScript sources (tests).
 */
export function defaultUiDirectory(): string {
  const top = path.resolve(__dirname, '..', '..', '..', '..');
  return path.basename(top) === 'dist'
    ? path.join(top, 'admin-ui')
    : path.join(top, 'dist', 'admin-ui');
}

/**
 * Reads every built file into memory once (the console is a few dozen KiB), with its content
 * type, ETag, caching policy and a gzip copy. Undefined when the console has not been built.
 */
export function loadUiAssets(directory: string): Map<string, UiAsset> | undefined {
  if (!existsSync(path.join(directory, 'index.html'))) return undefined;
  const assets = new Map<string, UiAsset>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
        continue;
      }
      const contentType = CONTENT_TYPES[path.extname(entry.name).toLowerCase()];
      if (!contentType) continue; // source maps and stray files are not served
      const relative = path.relative(directory, full).split(path.sep).join('/');
      const body = readFileSync(full);
      const gzip = body.length >= GZIP_MIN_BYTES ? gzipSync(body, { level: 9 }) : undefined;
      assets.set(relative, {
        body,
        gzip: gzip && gzip.length < body.length ? gzip : undefined,
        contentType,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
        cacheControl: relative.startsWith('assets/') ? IMMUTABLE : REVALIDATE,
      });
    }
  };
  walk(directory);
  return assets;
}

/*
 * The console loads only its own files and talks only to this origin: no inline script or
 * style, no framing, no form posts (sign-in uses fetch, so a page whose script failed to load
 * can never send the password in a URL).
 */
export const UI_SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};
