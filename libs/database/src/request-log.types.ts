/** One request as request_logs stores it; RequestLogWriter.record() takes it. */
export interface RequestLogEntry {
  requestId: string;
  apiKeyId?: string | null;
  userId?: string | null;
  method: string;
  route: string;
  model?: string | null;
  provider?: string | null;
  statusCode: number;
  latencyMs: number;
  promptTokens?: number | null;
  completionTokens?: number | null;
  cached?: boolean;
  credits?: number;
  error?: string | null;
  createdAt?: Date;
}
