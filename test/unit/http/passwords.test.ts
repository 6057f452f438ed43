import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../../../src/http/passwords.ts';

describe('passwords', () => {
  it('should verify the password when it is the one that was hashed', async () => {
    const hash = await hashPassword('correct horse battery staple');

    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(await verifyPassword('correct horse battery staple', hash)).toBe(true);
    expect(await verifyPassword('correct horse battery stapler', hash)).toBe(false);
  });

  it('should salt each hash when the same password is hashed twice', async () => {
    expect(await hashPassword('same password')).not.toBe(await hashPassword('same password'));
  });

  it('should answer false when the stored hash is malformed or asks for too much memory', async () => {
    expect(await verifyPassword('whatever!', 'bcrypt$xyz')).toBe(false);
    expect(await verifyPassword('whatever!', 'scrypt$1073741824$8$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==')).toBe(false);
  });

  it('should refuse to hash a password when it is shorter than 8 characters', async () => {
    await expect(hashPassword('short')).rejects.toThrow(RangeError);
  });
});
