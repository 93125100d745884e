'use strict';
/**
 * The framework floor, for comparison only: a NestJS + Fastify app that does nothing but forward
 * POST /v1/chat/completions to the upstream of the benchmark's providers file with an undici
 * pool — no auth, limits, credits, cache, logs or metrics. Run it as a candidate row:
 *   BENCH_CANDIDATE_MAIN=bench/nest-floor.js npm run bench
 * Its distance to the bare proxy is what Nest, Fastify and JSON cost before any gateway work.
 */
require('reflect-metadata');
const { readFileSync } = require('node:fs');
const { Body, Controller, Module, Post } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { FastifyAdapter } = require('@nestjs/platform-fastify');
const { Pool } = require('undici');

const baseUrl = new URL(
  /base_url:\s*['"]?([^'"\s]+)/.exec(readFileSync(process.env.PROVIDERS_FILE, 'utf8'))[1],
);
const upstream = new Pool(baseUrl.origin, { connections: 64 });
const chatPath = `${baseUrl.pathname.replace(/\/$/, '')}/chat/completions`;

class ChatController {
  async chat(body) {
    const res = await upstream.request({
      path: chatPath,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return res.body.json();
  }
}
Controller()(ChatController);
Post('v1/chat/completions')(
  ChatController.prototype,
  'chat',
  Object.getOwnPropertyDescriptor(ChatController.prototype, 'chat'),
);
Body()(ChatController.prototype, 'chat', 0);

class FloorModule {}
Module({ controllers: [ChatController] })(FloorModule);

NestFactory.create(FloorModule, new FastifyAdapter(), { logger: false }).then((app) =>
  app.listen(Number(process.env.PORT), '127.0.0.1'),
);
