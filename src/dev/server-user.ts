// Which OS user runs the embedded PostgreSQL: PostgreSQL refuses to run as root, so as root the server
// runs as an existing unprivileged user, and every folder it uses must be reachable by that user.
import { execFileSync } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';

export interface ServerUser {
  name: string;
  uid: number;
  gid: number;
}

/** PostgreSQL refuses to run as root: as root, run it as `postgres` (or `nobody`), never creating users. */
export function serverUser(): ServerUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && Number.isInteger(gid) && uid !== 0) return { name, uid, gid };
    } catch {
      // no such user; try the next one
    }
  }
  throw new Error(
    'running as root: PostgreSQL refuses to run as root, and there is neither a "postgres" nor a "nobody" user to run it as',
  );
}

/** Whether `user` can search every folder from / down to `dir` (owner, group or other x bit). */
export async function reachableBy(user: ServerUser, dir: string): Promise<boolean> {
  let current = path.resolve(dir);
  for (;;) {
    const info = await stat(current).catch(() => undefined);
    if (info) {
      const searchable =
        info.uid === user.uid ? info.mode & 0o100 : info.gid === user.gid ? info.mode & 0o010 : info.mode & 0o001;
      if (!searchable) return false;
    }
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

export function identity(user: ServerUser | undefined): { uid?: number; gid?: number } {
  return user ? { uid: user.uid, gid: user.gid } : {};
}
