import { InitialSchema1732300000000 } from './1732300000000-initial-schema';

/** Every migration in order. Listed explicitly so the same list works from ts and from dist. */
export const MIGRATIONS = [InitialSchema1732300000000];
