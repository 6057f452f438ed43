// `bankstream users add`: creates an API user (id, role, scrypt password hash) in the users table, so that a
// demo or a test can get a dev-mode token from POST /v1/auth/token. The password comes from --password-stdin
// (preferred: nothing in the process list or shell history) or from BANKSTREAM_USER_PASSWORD.
import { type Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { PASSWORD_CHARS_MAX, PASSWORD_CHARS_MIN } from '../../http/passwords.ts';
import { type Role, ROLES, createUser, isRole } from '../../http/users.ts';
import { connectPg } from '../../sinks/pg-connection.ts';

interface AddOptions {
  id: string;
  role: Role;
  name?: string;
  email?: string;
  passwordStdin?: boolean;
  replace?: boolean;
}

export function register(program: Command): void {
  const users = program.command('users').description('manage API users (dev-mode authentication)');
  users
    .command('add')
    .description('create a user with a role and a password (scrypt-hashed)')
    .requiredOption('--id <id>', 'user id, the token subject (customers own accounts whose ownerId is this id)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, parseRole)
    .option('--name <name>', 'display name (default: the id)')
    .option('--email <email>', 'e-mail address; also accepted as the username at login')
    .option('--password-stdin', 'read the password from standard input (otherwise BANKSTREAM_USER_PASSWORD)')
    .option('--replace', 'update the user when the id exists')
    .action(async (options: AddOptions) => {
      const config = loadConfig();
      const password = options.passwordStdin ? await readStdin() : (process.env['BANKSTREAM_USER_PASSWORD'] ?? '');
      if (password.length < PASSWORD_CHARS_MIN || password.length > PASSWORD_CHARS_MAX) {
        console.error(
          `bankstream users add: the password must have ${PASSWORD_CHARS_MIN} to ${PASSWORD_CHARS_MAX} characters (--password-stdin or BANKSTREAM_USER_PASSWORD)`,
        );
        process.exitCode = 2;
        return;
      }
      const client = await connectPg(config.databaseUrl, config.postgresTls, {
        target: 'read-write',
        client: { application_name: 'bankstream-users' },
      });
      try {
        await createUser(
          client,
          {
            id: options.id,
            role: options.role,
            password,
            ...(options.name ? { name: options.name } : {}),
            ...(options.email ? { email: options.email } : {}),
          },
          { replace: options.replace ?? false },
        );
      } finally {
        await client.end();
      }
      console.log(`user ${options.id} (${options.role}) ${options.replace ? 'saved' : 'created'}`);
    });
}

function parseRole(value: string): Role {
  if (!isRole(value)) throw new InvalidArgumentError(`expected one of ${ROLES.join(', ')}`);
  return value;
}

/** The first line of standard input, without its line break. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}
