// Who made a request, once authenticated (a verified bearer token or a signed instance call).
import type { Role } from './users.ts';

export interface Principal {
  subject: string;
  role: Role;
  /** When the token expires (its exp claim): long-lived responses (SSE) end then. */
  expiresAtMs: number;
}
