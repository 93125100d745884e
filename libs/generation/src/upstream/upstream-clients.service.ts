import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ProviderConfig } from '../providers/provider.types';
import { MockUpstream } from './mock.upstream';
import { OpenAiUpstream } from './openai.upstream';
import { UpstreamClient } from './upstream.types';

interface Entry {
  fingerprint: string;
  client: UpstreamClient;
}

/**
 * One client (and so one keep-alive pool) per provider, rebuilt when the provider's connection
 * settings change. A replaced pool is closed gracefully: requests in flight on it finish.
 */
@Injectable()
export class UpstreamClients implements OnApplicationShutdown {
  private readonly clients = new Map<string, Entry>();
  private readonly byConfig = new WeakMap<ProviderConfig, UpstreamClient>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  for(provider: ProviderConfig): UpstreamClient {
    // The registry makes new ProviderConfig objects only when it reloads: skip the fingerprint.
    const known = this.byConfig.get(provider);
    if (known) return known;
    const fingerprint = JSON.stringify([
      provider.kind,
      provider.baseUrl,
      provider.timeoutMs,
      provider.mock,
    ]);
    const entry = this.clients.get(provider.name);
    if (entry?.fingerprint === fingerprint) {
      this.byConfig.set(provider, entry.client);
      return entry.client;
    }
    if (entry) void entry.client.close();
    const client =
      provider.kind === 'mock'
        ? new MockUpstream(provider)
        : new OpenAiUpstream(provider, {
            connections: this.config.upstream.poolConnections,
            connectTimeoutMs: this.config.upstream.connectTimeoutMs,
          });
    this.clients.set(provider.name, { fingerprint, client });
    this.byConfig.set(provider, client);
    return client;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.clients.values()].map((e) => e.client.close()));
    this.clients.clear();
  }
}
