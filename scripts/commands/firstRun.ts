import type { Knex } from 'knex';
import { createAccount, findOrCreateTenant } from '../../shared/accounts/index.js';
import type { Config } from '../../shared/config/index.js';
import { createDb, familyRole, withTenant } from '../../shared/db/index.js';
import { Keys } from '../../shared/keys.js';

export const BOOTSTRAP_ADMIN = 'admin@botserver.local';
export const BOOTSTRAP_TENANT = 'default';

/** The demo bot a first run creates, so a newcomer can chat at once; an operator can edit or delete it. */
export const DEMO_BOT = {
  name: 'Demo bot',
  greeting: 'Hi! I am the demo bot of this botserver. Say hello, ask for help, or ask to talk to a person.',
  rules: [
    { match: '/\\b(human|person|agent|operator|someone)\\b/i', reply: 'I have asked a person to join this chat. They will answer here.', handoff: true },
    { match: '/\\b(hello|hi|hey)\\b/i', reply: 'Hello! I answer with the rules an operator writes in the console. Ask me for help to learn more.' },
    { match: 'help', reply: 'Operators give me rules (a word, a phrase or /a regex/ and its reply), an LLM, and documents to answer from. Ask for a person to try the handoff.' },
    { match: 'thank', reply: 'You are welcome!' },
  ],
} as const;

export interface FirstRun {
  admin?: { email: string; password: string };
  demoBot?: { id: string; guestPath: string };
}

async function createDemoBot(db: Knex, tenantId: string, createdBy: string): Promise<string> {
  return withTenant(db, tenantId, async (trx) => {
    const [row] = await trx('bots')
      .insert({ tenant_id: tenantId, name: DEMO_BOT.name, public: true, greeting: DEMO_BOT.greeting, rules: JSON.stringify(DEMO_BOT.rules), created_by: createdBy })
      .returning<Array<{ id: string }>>('id');
    if (row === undefined) throw new Error('demo bot not created');
    return row.id;
  });
}

/**
 * On an empty database (no account yet): the bootstrap admin, with a one-time password, and a public demo bot in
 * the operator tenant. Nothing otherwise. The password is returned to be shown once, never logged.
 */
export async function firstRun(config: Config): Promise<FirstRun> {
  const keys = new Keys(config.secrets);
  const db = createDb({ url: config.databaseUrl, role: familyRole.api, poolMax: 2 });
  try {
    if ((await db('users').first<{ id: string } | undefined>('id')) !== undefined) return {};
    const admin = await createAccount(db, keys, { email: BOOTSTRAP_ADMIN, role: 'admin', tenant: BOOTSTRAP_TENANT });
    const tenantId = await findOrCreateTenant(db, BOOTSTRAP_TENANT);
    const botId = await createDemoBot(db, tenantId, admin.id);
    return { admin: { email: admin.email, password: admin.password }, demoBot: { id: botId, guestPath: `/?bot=${botId}` } };
  } finally {
    await db.destroy();
    keys.zeroize();
  }
}
