import type { PageDef } from '../types';
import { auditPage } from './audit';
import { breakersPage } from './breakers';
import { cachePage } from './cache';
import { jobsPage } from './jobs';
import { keysPage } from './keys';
import { overviewPage } from './overview';
import { providersPage } from './providers';
import { sessionsPage } from './sessions';
import { usersPage } from './users';

export const PAGES: PageDef[] = [
  overviewPage,
  providersPage,
  breakersPage,
  sessionsPage,
  keysPage,
  usersPage,
  jobsPage,
  cachePage,
  auditPage,
];
