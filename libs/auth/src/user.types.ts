export type UserRole = 'admin' | 'user';

export interface UserRecord {
  id: string;
  username: string;
  email: string | null;
  role: UserRole;
  passwordHash: string | null;
  subscriptionTier: string;
  createdAt: Date;
}

/** A user as the admin API shows it (never the password hash). */
export interface UserView {
  id: string;
  username: string;
  email: string | null;
  role: UserRole;
  subscription_tier: string;
  balance: number;
  base_quota: number;
  created_at: string;
}

/** Owner of the keys in API_KEYS (DESIGN §2). */
export const BOOTSTRAP_USERNAME = 'bootstrap';
export const ADMIN_USERNAME = 'admin';
