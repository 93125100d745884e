import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The whole schema of DESIGN §3. Constraints live here (balance >= 0, unique idempotency keys,
 * foreign keys) so that code can rely on them and map their violations to domain errors.
 */
export class InitialSchema1732300000000 implements MigrationInterface {
  name = 'InitialSchema1732300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE EXTENSION IF NOT EXISTS pgcrypto`);

    await q.query(`
      CREATE TABLE users (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        username text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 100),
        email text,
        role text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
        password_hash text,
        subscription_tier text NOT NULL DEFAULT 'free',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);

    await q.query(`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name text NOT NULL,
        prefix text NOT NULL,
        key_hash text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
        scopes text[] NOT NULL DEFAULT ARRAY['chat', 'images', 'jobs'],
        rate_limit_per_minute integer CHECK (rate_limit_per_minute > 0),
        rate_limit_per_hour integer CHECK (rate_limit_per_hour > 0),
        cache_scope text NOT NULL DEFAULT 'user' CHECK (cache_scope IN ('user', 'shared')),
        rotated_from uuid REFERENCES api_keys(id) ON DELETE SET NULL,
        expires_at timestamptz,
        revoked_at timestamptz,
        last_used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX api_keys_user_id_idx ON api_keys (user_id)`);

    await q.query(`
      CREATE TABLE user_credits (
        user_id uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
        base_quota bigint NOT NULL DEFAULT 0 CHECK (base_quota >= 0),
        billing_cycle_end timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);

    await q.query(`
      CREATE TABLE credit_ledger (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        event_type text NOT NULL CHECK (event_type IN ('grant', 'debit', 'refund', 'settle', 'admin_adjustment', 'cycle_reset')),
        amount bigint NOT NULL,
        balance_after bigint NOT NULL CHECK (balance_after >= 0),
        idempotency_key text,
        request_id text,
        description text,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT credit_ledger_user_idempotency_key UNIQUE (user_id, idempotency_key)
      )`);
    await q.query(
      `CREATE INDEX credit_ledger_user_created_idx ON credit_ledger (user_id, created_at DESC, id DESC)`,
    );
    await q.query(
      `CREATE INDEX credit_ledger_request_id_idx ON credit_ledger (request_id) WHERE request_id IS NOT NULL`,
    );

    await q.query(`
      CREATE TABLE pricing (
        model text PRIMARY KEY,
        per_request numeric(20, 6) NOT NULL DEFAULT 0 CHECK (per_request >= 0),
        per_1k_prompt_tokens numeric(20, 6) NOT NULL DEFAULT 0 CHECK (per_1k_prompt_tokens >= 0),
        per_1k_completion_tokens numeric(20, 6) NOT NULL DEFAULT 0 CHECK (per_1k_completion_tokens >= 0),
        per_image numeric(20, 6) NOT NULL DEFAULT 0 CHECK (per_image >= 0),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);

    await q.query(`
      CREATE TABLE providers (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        kind text NOT NULL CHECK (kind IN ('mock', 'openai')),
        base_url text,
        session_auth text NOT NULL DEFAULT 'none' CHECK (session_auth IN ('none', 'bearer', 'cookie')),
        priority integer NOT NULL DEFAULT 1,
        enabled boolean NOT NULL DEFAULT true,
        models text[] NOT NULL DEFAULT '{}',
        timeout_ms integer NOT NULL DEFAULT 30000 CHECK (timeout_ms > 0),
        settings jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);

    await q.query(`
      CREATE TABLE sessions (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        provider text NOT NULL,
        cookie_text text NOT NULL,
        cookie_hash text NOT NULL UNIQUE,
        status text NOT NULL DEFAULT 'healthy' CHECK (status IN ('healthy', 'quarantined', 'expired', 'disabled')),
        failure_count integer NOT NULL DEFAULT 0,
        success_count integer NOT NULL DEFAULT 0,
        failure_rate double precision NOT NULL DEFAULT 0,
        recent_outcomes text NOT NULL DEFAULT '',
        cooldown_until timestamptz,
        last_used_at timestamptz,
        last_checked_at timestamptz,
        quarantined_at timestamptz,
        expires_at timestamptz,
        metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE INDEX sessions_provider_status_idx ON sessions (provider, status, last_used_at NULLS FIRST)`,
    );

    await q.query(`
      CREATE TABLE generation_jobs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        api_key_id uuid REFERENCES api_keys(id) ON DELETE SET NULL,
        type text NOT NULL CHECK (type IN ('chat', 'image')),
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'generating', 'succeeded', 'failed', 'cancelled')),
        input jsonb NOT NULL,
        result jsonb,
        error_message text,
        credits_charged bigint NOT NULL DEFAULT 0,
        attempts integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        completed_at timestamptz
      )`);
    await q.query(
      `CREATE INDEX generation_jobs_status_created_idx ON generation_jobs (status, created_at)`,
    );
    await q.query(
      `CREATE INDEX generation_jobs_user_created_idx ON generation_jobs (user_id, created_at DESC)`,
    );

    // Partitioned by day so retention drops whole partitions instead of bloating with DELETEs.
    await q.query(`
      CREATE TABLE request_logs (
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        request_id text NOT NULL,
        api_key_id uuid,
        user_id uuid,
        method text NOT NULL,
        route text NOT NULL,
        model text,
        provider text,
        status_code integer NOT NULL,
        latency_ms double precision NOT NULL,
        prompt_tokens integer,
        completion_tokens integer,
        cached boolean NOT NULL DEFAULT false,
        credits bigint NOT NULL DEFAULT 0,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, created_at)
      ) PARTITION BY RANGE (created_at)`);
    await q.query(`CREATE INDEX request_logs_created_idx ON request_logs (created_at)`);
    await q.query(`CREATE INDEX request_logs_api_key_idx ON request_logs (api_key_id, created_at)`);
    await q.query(`
      CREATE FUNCTION ensure_request_log_partitions(days_ahead integer) RETURNS void
      LANGUAGE plpgsql AS $$
      DECLARE
        d date;
      BEGIN
        FOR i IN -1..days_ahead LOOP
          d := (now() AT TIME ZONE 'UTC')::date + i;
          EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF request_logs FOR VALUES FROM (%L) TO (%L)',
            'request_logs_' || to_char(d, 'YYYYMMDD'),
            (d::timestamp AT TIME ZONE 'UTC'),
            ((d + 1)::timestamp AT TIME ZONE 'UTC'));
        END LOOP;
      END $$`);
    await q.query(`SELECT ensure_request_log_partitions(3)`);

    await q.query(`
      CREATE TABLE audit_log (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        actor text NOT NULL,
        action text NOT NULL,
        target text,
        details jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of [
      'audit_log',
      'request_logs',
      'generation_jobs',
      'sessions',
      'providers',
      'pricing',
      'credit_ledger',
      'user_credits',
      'api_keys',
      'users',
    ]) {
      await q.query(`DROP TABLE IF EXISTS ${table} CASCADE`);
    }
    await q.query(`DROP FUNCTION IF EXISTS ensure_request_log_partitions(integer)`);
  }
}
