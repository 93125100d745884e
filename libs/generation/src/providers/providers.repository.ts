import { Injectable } from '@nestjs/common';
import { DatabaseService } from '@app/database';
import { ProviderDefinition } from './providers-file';
import { MockSettings, ProviderKind, SessionAuth } from './provider.types';

export interface ProviderRow {
  id: string;
  name: string;
  kind: ProviderKind;
  base_url: string | null;
  session_auth: SessionAuth;
  priority: number;
  enabled: boolean;
  models: string[];
  timeout_ms: number;
  settings: {
    mock?: MockSettings;
    file?: { priority: number; enabled: boolean; base_url?: string | null };
  };
  created_at: Date;
  updated_at: Date;
}

export interface ProviderPatch {
  priority?: number;
  enabled?: boolean;
  timeout_ms?: number;
  base_url?: string;
  settings?: MockSettings;
}

const COLUMNS = `id, name, kind, base_url, session_auth, priority, enabled, models, timeout_ms,
  settings, created_at, updated_at`;

export function mockSettingsOf(def: ProviderDefinition): MockSettings {
  const settings: MockSettings = {};
  if (def.latency_ms !== undefined) settings.latency_ms = def.latency_ms;
  if (def.chunk_delay_ms !== undefined) settings.chunk_delay_ms = def.chunk_delay_ms;
  if (def.error_rate !== undefined) settings.error_rate = def.error_rate;
  if (def.fail_status !== undefined) settings.fail_status = def.fail_status;
  return settings;
}

@Injectable()
export class ProvidersRepository {
  constructor(private readonly database: DatabaseService) {}

  /**
   * Writes the file's providers into the table. Priority, enabled and base_url are run-time
   * controls (PATCH /admin/providers): an admin's change survives restarts, and the file's value
   * wins again only when the file itself changes it (the last file values are kept in
   * settings.file).
   */
  async syncFromFile(definitions: ProviderDefinition[]): Promise<void> {
    await this.database.transaction(async (tx) => {
      for (const def of definitions) {
        const settings = {
          mock: mockSettingsOf(def),
          file: { priority: def.priority, enabled: def.enabled, base_url: def.base_url ?? null },
        };
        await tx.query(
          `INSERT INTO providers (name, kind, base_url, session_auth, priority, enabled, models,
             timeout_ms, settings)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
           ON CONFLICT (name) DO UPDATE SET
             kind = EXCLUDED.kind,
             base_url = CASE WHEN providers.settings->'file'->'base_url'
                               IS DISTINCT FROM EXCLUDED.settings->'file'->'base_url'
                             THEN EXCLUDED.base_url ELSE providers.base_url END,
             session_auth = EXCLUDED.session_auth,
             models = EXCLUDED.models,
             timeout_ms = EXCLUDED.timeout_ms,
             priority = CASE WHEN providers.settings->'file'->'priority'
                               IS DISTINCT FROM EXCLUDED.settings->'file'->'priority'
                             THEN EXCLUDED.priority ELSE providers.priority END,
             enabled = CASE WHEN providers.settings->'file'->'enabled'
                              IS DISTINCT FROM EXCLUDED.settings->'file'->'enabled'
                            THEN EXCLUDED.enabled ELSE providers.enabled END,
             settings = EXCLUDED.settings,
             updated_at = now()`,
          [
            def.name,
            def.kind,
            def.base_url ?? null,
            def.session_auth,
            def.priority,
            def.enabled,
            def.models,
            def.timeout_ms,
            JSON.stringify(settings),
          ],
        );
      }
    });
  }

  async list(): Promise<ProviderRow[]> {
    return this.database.query<ProviderRow>(
      `SELECT ${COLUMNS} FROM providers ORDER BY priority, name`,
      [],
      'providers.list',
    );
  }

  async update(id: string, patch: ProviderPatch): Promise<ProviderRow | null> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      sets.push(sql.replace('?', `$${params.length}`));
    };
    if (patch.priority !== undefined) add('priority = ?', patch.priority);
    if (patch.enabled !== undefined) add('enabled = ?', patch.enabled);
    if (patch.timeout_ms !== undefined) add('timeout_ms = ?', patch.timeout_ms);
    if (patch.base_url !== undefined) add('base_url = ?', patch.base_url);
    if (patch.settings !== undefined)
      add(`settings = jsonb_set(settings, '{mock}', ?::jsonb)`, JSON.stringify(patch.settings));
    const rows = await this.database.query<ProviderRow>(
      `UPDATE providers SET ${sets.join(', ')}, updated_at = now() WHERE id = $1
       RETURNING ${COLUMNS}`,
      params,
      'providers.update',
    );
    return rows[0] ?? null;
  }
}
