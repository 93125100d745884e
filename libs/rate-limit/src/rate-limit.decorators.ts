import { SetMetadata } from '@nestjs/common';

export const SKIP_RATE_LIMIT = 'switchyard:skip-rate-limit';

/** Leaves an API-key route out of the per-key limits (e.g. a cheap status poll). */
export const SkipRateLimit = () => SetMetadata(SKIP_RATE_LIMIT, true);
