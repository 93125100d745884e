export const JOB_TYPES = ['chat', 'image'] as const;
export type JobType = (typeof JOB_TYPES)[number];

export const JOB_STATUSES = ['pending', 'generating', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** A job in one of these can still change; the others are final. */
export const ACTIVE_STATUSES: JobStatus[] = ['pending', 'generating'];
export const FINAL_STATUSES: JobStatus[] = ['succeeded', 'failed', 'cancelled'];

/** A generation_jobs row as the jobs module uses it. */
export interface JobRecord {
  id: string;
  userId: string;
  apiKeyId: string | null;
  type: JobType;
  status: JobStatus;
  input: Record<string, unknown>;
  result: unknown;
  errorMessage: string | null;
  creditsCharged: number;
  attempts: number;
  /** The credits hold taken at submit (CreditsService's Reservation), null when nothing was held. */
  reservation: unknown;
  creditsClosedAt: Date | null;
  idempotencyKey: string | null;
  requestId: string | null;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
}

/**
 * The request id on every log line of a job's run: its submit's (POST /v1/generations), also
 * the generation's request id upstream. Jobs queued before generation_jobs.request_id existed
 * (migration 1732300008000) have none: their own id stands in.
 */
export function jobRequestId(job: Pick<JobRecord, 'id' | 'requestId'>): string {
  return job.requestId ?? job.id;
}

/** What GET /v1/generations/:id answers. */
export interface JobView {
  id: string;
  object: 'generation';
  type: JobType;
  status: JobStatus;
  result: unknown;
  error: string | null;
  credits_charged: number;
  attempts: number;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

/** What GET /admin/jobs lists (no request or result bodies: they can be megabytes). */
export interface AdminJobView {
  id: string;
  user_id: string;
  api_key_id: string | null;
  type: JobType;
  status: JobStatus;
  model: string | null;
  error: string | null;
  credits_charged: number;
  attempts: number;
  request_id: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

/** One status change, broadcast to every replica (WebSocket delivery) as JSON. */
export interface JobEvent {
  userId: string;
  id: string;
  type: JobType;
  status: JobStatus;
  result?: unknown;
  error?: string;
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}

export function toJobView(job: JobRecord): JobView {
  return {
    id: job.id,
    object: 'generation',
    type: job.type,
    status: job.status,
    result: job.status === 'succeeded' ? job.result : null,
    error: job.errorMessage,
    credits_charged: job.creditsCharged,
    attempts: job.attempts,
    created_at: job.createdAt.toISOString(),
    started_at: iso(job.startedAt),
    completed_at: iso(job.completedAt),
  };
}

export function toAdminJobView(job: JobRecord): AdminJobView {
  const model = job.input?.model;
  return {
    id: job.id,
    user_id: job.userId,
    api_key_id: job.apiKeyId,
    type: job.type,
    status: job.status,
    model: typeof model === 'string' ? model : null,
    error: job.errorMessage,
    credits_charged: job.creditsCharged,
    attempts: job.attempts,
    request_id: job.requestId,
    created_at: job.createdAt.toISOString(),
    started_at: iso(job.startedAt),
    completed_at: iso(job.completedAt),
  };
}

export function toJobEvent(job: JobRecord): JobEvent {
  const event: JobEvent = { userId: job.userId, id: job.id, type: job.type, status: job.status };
  if (job.status === 'succeeded') event.result = job.result;
  if (job.errorMessage) event.error = job.errorMessage;
  return event;
}
