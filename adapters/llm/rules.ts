import { Script, createContext } from 'node:vm';
import { z } from 'zod';
import { ValidationError } from '../../shared/errors.js';
import { log } from '../../shared/log/index.js';
import type { BotRule } from './types.js';

export const MAX_RULES = 100;
export const MAX_MATCH_LENGTH = 200;
export const MAX_REPLY_LENGTH = 4000;
/** Only this much of a message (UTF-16 units, from its start) is looked at by the rules. */
export const MAX_MATCHED_MESSAGE_LENGTH = 10_000;
/** Wall-clock budget for all regex rules of one message; a pathological pattern is cut off, not waited for. */
export const REGEX_TIME_BUDGET_MS = 250;
/** Longest a single regex rule may run before it is cut off and skipped. */
export const REGEX_TIMEOUT_MS = 50;

const ALLOWED_FLAGS = /^[imsu]*$/;
/** `/pattern/flags`: a leading slash, a last slash after at least one character, then letters only. */
const REGEX_FORM = /^\/(.+)\/([A-Za-z]*)$/s;

type RegexCheck = { ok: true; regex: RegExp } | { ok: false; reason: string };

/** Whether `match` is written as `/pattern/flags` (and so is a regular expression rather than a phrase). */
export function isRegexMatch(match: string): boolean {
  return REGEX_FORM.test(match);
}

function compileRegexMatch(match: string): RegexCheck | undefined {
  const parts = REGEX_FORM.exec(match);
  if (parts === null) return undefined;
  const [, pattern = '', flags = ''] = parts;
  if (!ALLOWED_FLAGS.test(flags)) return { ok: false, reason: 'regular expression flags must be among i, m, s and u' };
  try {
    return { ok: true, regex: new RegExp(pattern, flags) };
  } catch {
    // V8's message repeats the pattern; ours does not need to.
    return { ok: false, reason: 'is not a valid regular expression' };
  }
}

/**
 * Case folding one code point at a time, so that folding commutes with taking substrings: canonical
 * decomposition (é and e + ◌́ meet), then lower-, upper- and lower-casing again (ß, ẞ and SS; ς, Σ and σ; K and
 * k meet).
 */
function foldCodePoint(codePoint: string): string {
  return codePoint.normalize('NFD').toLowerCase().toUpperCase().toLowerCase();
}

const ASCII = /^[\x20-\x7e]*$/;
const WHITESPACE_RUN = /\s+/gu;

/** The form in which phrases and messages are compared: case-folded, every run of white space one space. */
export function foldForMatching(text: string): string {
  const folded = ASCII.test(text) ? text.toLowerCase() : Array.from(text, foldCodePoint).join('');
  return folded.replace(WHITESPACE_RUN, ' ');
}

export const botRuleSchema = z.strictObject({
  match: z
    .string()
    .min(1)
    .max(MAX_MATCH_LENGTH)
    .superRefine((match, context) => {
      const compiled = compileRegexMatch(match);
      if (compiled === undefined) {
        if (match.trim() === '') context.addIssue({ code: 'custom', message: 'must contain a word or phrase, not only spaces' });
      } else if (!compiled.ok) {
        context.addIssue({ code: 'custom', message: compiled.reason });
      }
    }),
  reply: z.string().min(1).max(MAX_REPLY_LENGTH),
  handoff: z.boolean().optional(),
});

/** A bot's rules: at most 100, tried in order. */
export const botRulesSchema = z.array(botRuleSchema).max(MAX_RULES);

/** Validates rules, throwing a ValidationError whose field names the offending rule (`rules.3.match`). */
export function parseBotRules(input: unknown, field = 'rules'): BotRule[] {
  const result = botRulesSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = [field, ...(issue?.path ?? []).map(String)].join('.');
  throw new ValidationError(`${path}: ${issue?.message ?? 'invalid'}`, path);
}

/** Compiled regex rules, by their `match` text (null: not usable). Bounded; cleared when full. */
const regexCache = new Map<string, RegExp | null>();
const REGEX_CACHE_LIMIT = 1000;

function cachedRegex(match: string): RegExp | null {
  const cached = regexCache.get(match);
  if (cached !== undefined) return cached;
  const compiled = compileRegexMatch(match);
  const regex = compiled?.ok === true ? compiled.regex : null;
  if (regexCache.size >= REGEX_CACHE_LIMIT) regexCache.clear();
  regexCache.set(match, regex);
  return regex;
}

/**
 * Regex rules run inside a vm context with a timeout, so that a catastrophically backtracking pattern
 * (`/(a+)+$/`) is interrupted instead of freezing the process. One run tests several regexes in order; `next`
 * tells which one was running when a timeout struck, so that one is skipped and the rest still get their turn.
 */
interface RegexSandbox {
  regexes: RegExp[];
  text: string;
  next: number;
}
const sandbox: RegexSandbox = { regexes: [], text: '', next: 0 };
createContext(sandbox);
const firstRegexMatch = new Script('(() => { for (; next < regexes.length; next++) if (regexes[next].test(text)) return next; return -1; })()');

/** Index (into `regexes`) of the first one that matches `text`, or -1; `ruleIndex` maps back to rules for logs. */
function runRegexes(regexes: RegExp[], text: string, ruleIndex: (index: number) => number | undefined): number {
  const deadline = Date.now() + REGEX_TIME_BUDGET_MS;
  sandbox.regexes = regexes;
  sandbox.text = text;
  sandbox.next = 0;
  try {
    while (sandbox.next < regexes.length) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        log.warn('bot rules: regex time budget spent; remaining regex rules skipped', { event: 'rules.regex_budget', rule: ruleIndex(sandbox.next) });
        return -1;
      }
      try {
        return firstRegexMatch.runInContext(sandbox, { timeout: Math.min(remaining, REGEX_TIMEOUT_MS) }) as number;
      } catch {
        log.warn('bot rules: a regex rule took too long and was skipped', { event: 'rules.regex_timeout', rule: ruleIndex(sandbox.next) });
        sandbox.next += 1;
      }
    }
    return -1;
  } finally {
    sandbox.regexes = [];
    sandbox.text = '';
  }
}

/**
 * The reply of the first rule that matches `message`, in order, or undefined. A plain `match` matches when,
 * trimmed and case-folded, it is contained in the case-folded message ("hello" matches "Hello there!"); a
 * `/regex/flags` match is tested against the message. Only the first 10,000 characters of the message are looked
 * at. Rules that are not valid (e.g. stored before validation) never match. Never throws.
 */
export function matchRule(rules: readonly BotRule[], message: string): string | undefined {
  return findRule(rules, message)?.rule.reply;
}

/** The first rule that matches `message` (see matchRule) and its index, or undefined. Never throws. */
export function findRule(rules: readonly BotRule[], message: string): { index: number; rule: BotRule } | undefined {
  const text = message.length > MAX_MATCHED_MESSAGE_LENGTH ? message.slice(0, MAX_MATCHED_MESSAGE_LENGTH) : message;
  let foldedText: string | undefined;
  // Regex rules met before the first plain match: [rule index, regex].
  const pending: Array<[number, RegExp]> = [];
  let plainIndex = -1;
  for (const [index, rule] of rules.entries()) {
    if (typeof rule.match !== 'string' || rule.match === '') continue;
    if (isRegexMatch(rule.match)) {
      const regex = cachedRegex(rule.match);
      if (regex !== null) pending.push([index, regex]);
      continue;
    }
    const phrase = rule.match.trim();
    if (phrase === '') continue;
    foldedText ??= foldForMatching(text);
    if (foldedText.includes(foldForMatching(phrase))) {
      plainIndex = index;
      break;
    }
  }
  let winner = plainIndex;
  if (pending.length > 0) {
    const found = runRegexes(
      pending.map(([, regex]) => regex),
      text,
      (index) => pending[index]?.[0],
    );
    const hit = pending[found];
    if (hit !== undefined) winner = hit[0];
  }
  const rule = winner >= 0 ? rules[winner] : undefined;
  return rule !== undefined && typeof rule.reply === 'string' ? { index: winner, rule } : undefined;
}
