// The `users` table (migrations/0001): API principals with a role and a scrypt password hash.
// Used by POST /v1/auth/token in dev mode and by `bankstream users add`.
import type pg from 'pg';
import { hashPassword } from './passwords.ts';

export const ROLES = ['customer', 'teller', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

export interface NewUser {
  id: string;
  role: Role;
  password: string;
  name?: string;
  email?: string;
}

export interface UserRow {
  id: string;
  role: Role;
  passwordHash: string;
}

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.Client, 'query'>;

/** Inserts a user; `replace` updates role, name, email and password of an existing id instead of failing. */
export async function createUser(db: Queryable, user: NewUser, options: { replace?: boolean } = {}): Promise<void> {
  const passwordHash = await hashPassword(user.password);
  // An address under the reserved .invalid TLD (RFC 2606) satisfies the schema's email rule without being real.
  const email = user.email ?? `${user.id}@users.bankstream.invalid`;
  const conflict = options.replace
    ? 'ON CONFLICT (id) DO UPDATE SET role = EXCLUDED.role, name = EXCLUDED.name, email = EXCLUDED.email, password_hash = EXCLUDED.password_hash'
    : '';
  await db.query(`INSERT INTO users (id, name, email, role, password_hash) VALUES ($1, $2, $3, $4, $5) ${conflict}`, [
    user.id,
    user.name ?? user.id,
    email,
    user.role,
    passwordHash,
  ]);
}

/** The user whose id or email (case-insensitive) is `username`. */
export async function findUser(db: Queryable, username: string): Promise<UserRow | undefined> {
  const result = await db.query<{ id: string; role: string; password_hash: string }>(
    'SELECT id, role, password_hash FROM users WHERE id = $1 OR lower(email) = lower($1) ORDER BY (id = $1) DESC LIMIT 1',
    [username],
  );
  const row = result.rows[0];
  if (!row || !isRole(row.role)) return undefined;
  return { id: row.id, role: row.role, passwordHash: row.password_hash };
}
