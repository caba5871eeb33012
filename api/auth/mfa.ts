import { generateSecret, generateURI, verify } from 'otplib';
import type { UserRow } from '../../shared/accounts/index.js';
import { decryptEmail } from '../../shared/accounts/index.js';
import { hmacHex, openString, randomHex, sealString } from '../../shared/crypto/index.js';
import { ConflictError, ValidationError } from '../../shared/errors.js';
import type { ApiContext } from '../context.js';

const RECOVERY_CODE_COUNT = 10;
/** One period either side, as authenticator clocks drift. */
const TOTP_TOLERANCE_SECONDS = 30;
const TOTP_ISSUER = 'botserver';

const totpAad = (userId: string): string => `users.totp_secret:${userId}`;
const lastStepKey = (userId: string): string => `botserver:totp:last-step:${userId}`;

/** Stores the step only when it is newer than the last accepted one: a code can be used once. */
const ACCEPT_STEP = `
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
local step = tonumber(ARGV[1])
if step <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
`;

const recoveryMessage = (userId: string, code: string): string => `recovery\0${userId}\0${code.trim().toLowerCase()}`;

/** A recovery code as stored: `<kid>:<hmac>` under the current recovery-code key. */
function recoveryCodeEntry(ctx: ApiContext, userId: string, code: string): string {
  const { current } = ctx.kernel.keys.recoveryCodeKeys;
  return `${current.kid}:${hmacHex(current.key, recoveryMessage(userId, code))}`;
}

/**
 * Every form a stored code could have: `<kid>:<hmac>` under the current or a previous recovery-code key, or (codes
 * made before key ids) a bare hmac keyed with the current or a previous BOTSERVER_JWT_SECRET itself.
 */
function recoveryCodeCandidates(ctx: ApiContext, userId: string, code: string): string[] {
  const { recoveryCodeKeys, legacyRecoveryRoots } = ctx.kernel.keys;
  const message = recoveryMessage(userId, code);
  return [
    ...[recoveryCodeKeys.current, ...recoveryCodeKeys.previous].map((entry) => `${entry.kid}:${hmacHex(entry.key, message)}`),
    ...legacyRecoveryRoots.map((root) => hmacHex(root, message)),
  ];
}

async function checkTotp(ctx: ApiContext, user: UserRow, code: string): Promise<boolean> {
  if (user.totp_secret_ciphertext === null) return false;
  const secret = openString(ctx.kernel.keys.columnRing, user.totp_secret_ciphertext, totpAad(user.id));
  const result = await verify({ secret, token: code, epochTolerance: TOTP_TOLERANCE_SECONDS });
  if (!result.valid || !('timeStep' in result)) return false;
  const accepted = await ctx.kernel.redis.eval(ACCEPT_STEP, 1, lastStepKey(user.id), String(result.timeStep), String(TOTP_TOLERANCE_SECONDS * 4));
  return accepted === 1;
}

async function useRecoveryCode(ctx: ApiContext, user: UserRow, code: string): Promise<boolean> {
  const candidates = recoveryCodeCandidates(ctx, user.id, code);
  // Removing the entry in the same statement that finds it makes each code single-use, even under races.
  const rows = await ctx.kernel.db('users')
    .where({ id: user.id })
    .whereRaw('mfa_recovery_codes \\?| ?::text[]', [candidates])
    .update({ mfa_recovery_codes: ctx.kernel.db.raw('mfa_recovery_codes - ?::text[]', [candidates]) }, ['id']);
  return rows.length === 1;
}

/** A TOTP code (not replayable within its window) or one of the recovery codes (each accepted once). */
export async function verifySecondFactor(ctx: ApiContext, user: UserRow, code: string): Promise<boolean> {
  if (!user.mfa_enabled) return false;
  return /^\d{6}$/.test(code) ? checkTotp(ctx, user, code) : useRecoveryCode(ctx, user, code);
}

export async function startEnrolment(ctx: ApiContext, user: UserRow): Promise<{ secret: string; otpauthUrl: string }> {
  if (user.mfa_enabled) throw new ConflictError('mfa_already_enabled', 'Multi-factor authentication is already enabled');
  const secret = generateSecret();
  await ctx.kernel.db('users')
    .where({ id: user.id })
    .update({ totp_secret_ciphertext: sealString(ctx.kernel.keys.columnRing, secret, totpAad(user.id)), updated_at: ctx.kernel.db.fn.now() });
  const otpauthUrl = generateURI({ issuer: TOTP_ISSUER, label: decryptEmail(ctx.kernel.keys, user), secret });
  return { secret, otpauthUrl };
}

/** Confirms enrolment with a first code and hands out the recovery codes, shown once and stored hashed. */
export async function completeEnrolment(ctx: ApiContext, user: UserRow, code: string): Promise<string[]> {
  if (user.mfa_enabled) throw new ConflictError('mfa_already_enabled', 'Multi-factor authentication is already enabled');
  if (user.totp_secret_ciphertext === null) throw new ConflictError('mfa_not_started', 'Start with POST /auth/mfa/setup');
  if (!/^\d{6}$/.test(code) || !(await checkTotp(ctx, user, code))) throw new ValidationError('The code is not valid', 'code', 'invalid_code');
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, () => formatRecoveryCode(randomHex(8)));
  // Only while still pending with the secret just checked: of two concurrent verifies one wins, and the recovery
  // codes it hands out are the stored ones (the loser's would never work); a restarted setup cannot be confirmed
  // with the previous secret's code.
  const enabled = await ctx.kernel.db('users')
    .where({ id: user.id, mfa_enabled: false, totp_secret_ciphertext: user.totp_secret_ciphertext })
    .update(
      {
        mfa_enabled: true,
        mfa_recovery_codes: JSON.stringify(codes.map((recovery) => recoveryCodeEntry(ctx, user.id, recovery))),
        updated_at: ctx.kernel.db.fn.now(),
      },
      ['id'],
    );
  if (enabled.length !== 1) throw new ConflictError('mfa_already_enabled', 'Multi-factor authentication was enabled or restarted meanwhile');
  return codes;
}

/** 64 random bits shown as xxxx-xxxx-xxxx-xxxx. */
function formatRecoveryCode(hex: string): string {
  return hex.match(/.{4}/g)?.join('-') ?? hex;
}
