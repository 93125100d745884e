import { api, Page, query } from '../api';
import type { User } from '../types';

const MAX_USERS = 1000;

/** Users for pickers and for showing usernames next to ids (up to MAX_USERS, newest first). */
export async function loadUsers(): Promise<User[]> {
  const users: User[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<User> = await api<Page<User>>(
      'GET',
      `/admin/users${query({ limit: 200, cursor })}`,
    );
    users.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && users.length < MAX_USERS);
  return users;
}

export function userOptions(users: User[]): { value: string; label: string }[] {
  return users.map((u) => ({
    value: u.id,
    label: `${u.username}${u.role === 'admin' ? ' (admin)' : ''}`,
  }));
}
