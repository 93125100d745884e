import { Controller, Get, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '@app/observability';
import { defaultUiDirectory, loadUiAssets, UI_SECURITY_HEADERS, UiAsset } from './admin-ui.assets';

export const UI_PATH = '/admin/ui';

/**
 * Serves the built admin console (admin-ui/, built by `npm run build`) at /admin/ui/. The page
 * itself is public like any login page; every number and action on it goes through the admin
 * API with the JWT the operator signs in for.
 */
@Controller('admin/ui')
export class AdminUiController {
  private assets?: Map<string, UiAsset>;

  /** `/admin/ui` → `/admin/ui/`, so the page's relative URLs resolve under the console. */
  @Get()
  root(@Res() reply: FastifyReply): void {
    void reply.redirect(`${UI_PATH}/`, 301);
  }

  @Get('*')
  file(@Req() request: FastifyRequest, @Res() reply: FastifyReply): void {
    const assets = this.load();
    const relative = decodePath(request.url.slice(UI_PATH.length + 1).split(/[?#]/)[0]);
    // The console routes in the URL hash, so every page is index.html at the root.
    const asset = assets.get(relative === '' ? 'index.html' : relative);
    if (!asset) throw ApiError.notFound(`No admin console file at ${request.url}`, 'not_found');

    reply.headers(UI_SECURITY_HEADERS);
    reply.header('cache-control', asset.cacheControl);
    reply.header('etag', asset.etag);
    reply.header('vary', 'accept-encoding');
    if (request.headers['if-none-match'] === asset.etag) {
      void reply.status(304).send();
      return;
    }
    reply.header('content-type', asset.contentType);
    const acceptsGzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    if (asset.gzip && acceptsGzip) {
      reply.header('content-encoding', 'gzip');
      void reply.send(asset.gzip);
      return;
    }
    void reply.send(asset.body);
  }

  private load(): Map<string, UiAsset> {
    // Loaded on first use; a gateway started before the build picks the files up once built.
    this.assets ??= loadUiAssets(defaultUiDirectory());
    if (!this.assets)
      throw new ApiError(
        503,
        'service_unavailable',
        'admin_ui_not_built',
        'The admin console has not been built: run `npm run build` (or `npm run build:ui`) and retry',
      );
    return this.assets;
  }
}

function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
