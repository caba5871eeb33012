import { expect } from 'chai';
import fc from 'fast-check';
import { z } from 'zod';
import {
  FALLBACK_REPLY,
  MAX_MATCHED_MESSAGE_LENGTH,
  RuleBot,
  botRulesSchema,
  createReplyEngine,
  isRegexMatch,
  matchRule,
  parseBotRules,
  type BotProfile,
  type BotRule,
  type ReplyEngine,
  type ReplyRequest,
} from '../../adapters/llm/index.js';
import { ValidationError } from '../../shared/errors.js';
import { log } from '../../shared/log/index.js';

const bot = (rules: BotRule[], llm: BotProfile['llm'] = null): BotProfile => ({ name: 'Test bot', rules, llm });
const ask = (profile: BotProfile, message: string, extra: Partial<ReplyRequest> = {}): ReplyRequest => ({ bot: profile, history: [], message, ...extra });

function fieldOfFailure(input: unknown): string | undefined {
  try {
    parseBotRules(input);
  } catch (error) {
    if (error instanceof ValidationError) return error.field;
    throw error;
  }
  return expect.fail('expected the rules to be refused');
}

describe('bot rules', () => {
  describe('matchRule', () => {
    it('tries the rules in order and the first match wins', () => {
      const rules = [
        { match: 'price', reply: 'first' },
        { match: 'price list', reply: 'second' },
      ];
      expect(matchRule(rules, 'Send me the price list')).to.equal('first');
      expect(matchRule([...rules].reverse(), 'Send me the price list')).to.equal('second');
    });

    it('matches a plain word regardless of case', () => {
      const rules = [{ match: 'hello', reply: 'Hi!' }];
      expect(matchRule(rules, 'Hello there!')).to.equal('Hi!');
      expect(matchRule(rules, 'HELLO')).to.equal('Hi!');
      expect(matchRule(rules, 'well, hElLo')).to.equal('Hi!');
      expect(matchRule(rules, 'goodbye')).to.equal(undefined);
    });

    it('matches a phrase contained in the message, trimmed, with any white space between its words', () => {
      const rules = [{ match: '  opening hours ', reply: 'Nine to five.' }];
      expect(matchRule(rules, 'What are your Opening Hours?')).to.equal('Nine to five.');
      expect(matchRule(rules, 'opening\n\thours please')).to.equal('Nine to five.');
      expect(matchRule(rules, 'hours of opening')).to.equal(undefined);
    });

    it('folds case the Unicode way', () => {
      expect(matchRule([{ match: 'straße', reply: 'street' }], 'WHERE IS THE STRASSE?')).to.equal('street');
      expect(matchRule([{ match: 'ΣΟΦΊΑ', reply: 'wisdom' }], 'η σοφία')).to.equal('wisdom');
      expect(matchRule([{ match: 'Ärger', reply: 'trouble' }], 'kein ärger')).to.equal('trouble');
      // Precomposed and decomposed accents meet.
      expect(matchRule([{ match: 'caf\u00e9', reply: 'coffee' }], 'CAFE\u0301 now')).to.equal('coffee');
    });

    it('tests /regex/flags matches against the message', () => {
      const rules = [
        { match: '/^order\\s+#?(\\d{4,})$/i', reply: 'Looking up your order.' },
        { match: '/refund/', reply: 'Case-sensitive refund.' },
        { match: '/^line two$/m', reply: 'multiline' },
        { match: '/a.b/s', reply: 'dotall' },
        { match: '/\\p{Emoji_Presentation}/u', reply: 'emoji' },
      ];
      expect(matchRule(rules, 'ORDER #12345')).to.equal('Looking up your order.');
      expect(matchRule(rules, 'order 12')).to.equal(undefined);
      expect(matchRule(rules, 'a refund please')).to.equal('Case-sensitive refund.');
      expect(matchRule(rules, 'A REFUND please')).to.equal(undefined);
      expect(matchRule(rules, 'line one\nline two')).to.equal('multiline');
      expect(matchRule(rules, 'a\nb')).to.equal('dotall');
      expect(matchRule(rules, 'nice 🎉')).to.equal('emoji');
    });

    it('keeps the order between plain and regex rules', () => {
      const rules = [
        { match: '/\\bhelp\\b/i', reply: 'regex first' },
        { match: 'help', reply: 'plain second' },
        { match: '/.*/', reply: 'catch-all' },
      ];
      expect(matchRule(rules, 'Help me')).to.equal('regex first');
      expect(matchRule(rules, 'helpful')).to.equal('plain second');
      expect(matchRule(rules, 'anything')).to.equal('catch-all');
      expect(matchRule([{ match: 'hi', reply: 'plain' }, { match: '/hi/', reply: 'regex' }], 'hi')).to.equal('plain');
    });

    it('looks only at the first 10,000 characters of a message', () => {
      const rules = [{ match: '/needle$/', reply: 'regex' }, { match: 'haystack-end', reply: 'plain' }];
      const padding = 'x'.repeat(MAX_MATCHED_MESSAGE_LENGTH);
      expect(matchRule(rules, `${padding}needle`)).to.equal(undefined);
      expect(matchRule(rules, `${padding}haystack-end`)).to.equal(undefined);
      expect(matchRule(rules, `${'x'.repeat(MAX_MATCHED_MESSAGE_LENGTH - 6)}needle`)).to.equal('regex');
    });

    it('cuts off a catastrophically backtracking regex instead of hanging, and goes on with the next rules', () => {
      const rules = [
        { match: '/^(a+)+$/', reply: 'redos' },
        { match: '/b$/', reply: 'after' },
      ];
      const started = Date.now();
      log.silent = true; // the warning it logs is expected here
      try {
        expect(matchRule(rules, `${'a'.repeat(5000)}!b`)).to.equal('after');
      } finally {
        log.silent = false;
      }
      expect(Date.now() - started).to.be.below(2000);
    });

    it('never matches rules that are not valid (stored before validation), instead of throwing', () => {
      const rules = [
        { match: '/(unclosed/', reply: 'bad regex' },
        { match: '/x/g', reply: 'bad flag' },
        { match: '   ', reply: 'blank' },
        { match: '', reply: 'empty' },
        { match: 'ok', reply: 'good' },
      ];
      expect(matchRule(rules, '(unclosed x ok')).to.equal('good');
      expect(matchRule(rules, 'nothing')).to.equal(undefined);
    });

    it('property: never throws, whatever the rules and message', () => {
      const rule = fc.record({ match: fc.oneof(fc.string(), fc.string().map((pattern) => `/${pattern}/i`)), reply: fc.string({ minLength: 1 }) });
      fc.assert(
        fc.property(fc.array(rule, { maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 300 }), (rules, message) => {
          const reply = matchRule(rules, message);
          expect(reply === undefined || rules.some((candidate) => candidate.reply === reply)).to.equal(true);
        }),
        { numRuns: 300 },
      );
    });

    it('property: a first rule whose match is a substring of the message (in any case) always matches', () => {
      const codePoints = fc.array(fc.oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), {
        minLength: 1,
        maxLength: 60,
      });
      fc.assert(
        fc.property(codePoints, fc.nat(), fc.nat(), fc.boolean(), (pieces, a, b, upper) => {
          const message = pieces.join('');
          const points = Array.from(message);
          const start = a % points.length;
          const end = start + 1 + (b % (points.length - start));
          const substring = points.slice(start, end).join('');
          const match = upper ? substring.toUpperCase() : substring.toLowerCase();
          fc.pre(match.trim() !== '' && match.length <= 200 && !isRegexMatch(match));
          // Only when changing case kept it a substring of the message in some case (e.g. not 'ǅ' → 'Ǆ' edge forms).
          fc.pre(matchRule([{ match: substring, reply: 'first' }], message) === 'first');
          expect(matchRule([{ match, reply: 'first' }, { match: '/.*/', reply: 'later' }], message)).to.equal('first');
        }),
        { numRuns: 500 },
      );
    });

    it('property: a substring of the message, as it is, always matches when first', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }), fc.nat(), fc.nat(), (message, a, b) => {
          const points = Array.from(message);
          const start = a % points.length;
          const end = start + 1 + (b % (points.length - start));
          const match = points.slice(start, end).join('');
          fc.pre(match.trim() !== '' && match.length <= 200 && !isRegexMatch(match));
          expect(matchRule([{ match, reply: 'first' }, { match: 'zzz', reply: 'later' }], message)).to.equal('first');
        }),
        { numRuns: 1000 },
      );
    });
  });

  describe('botRulesSchema', () => {
    it('accepts phrases and regexes with flags among i, m, s, u', () => {
      const rules = [
        { match: 'hello', reply: 'Hi' },
        { match: '/^order (\\d+)$/imsu', reply: 'Order' },
        { match: '/etc', reply: 'a phrase starting with a slash' },
      ];
      expect(parseBotRules(rules)).to.deep.equal(rules);
      expect(isRegexMatch('/etc')).to.equal(false);
    });

    it('refuses an invalid regex, naming the field', () => {
      expect(fieldOfFailure([{ match: 'ok', reply: 'x' }, { match: '/(unclosed/', reply: 'x' }])).to.equal('rules.1.match');
      expect(fieldOfFailure([{ match: '/a{2,1}/', reply: 'x' }])).to.equal('rules.0.match');
    });

    it('refuses flags other than i, m, s, u (and repeated ones), naming the field', () => {
      for (const flags of ['g', 'y', 'd', 'v', 'I', 'ii', 'gi']) {
        expect(fieldOfFailure([{ match: 'ok', reply: 'x' }, { match: 'fine', reply: 'y' }, { match: `/abc/${flags}`, reply: 'x' }]), flags).to.equal('rules.2.match');
      }
    });

    it('keeps the path when embedded in a larger schema (rules.N.match)', () => {
      const result = z.object({ rules: botRulesSchema }).safeParse({ rules: [{ match: '/[/', reply: 'x' }] });
      expect(result.success).to.equal(false);
      expect(result.error?.issues[0]?.path).to.deep.equal(['rules', 0, 'match']);
    });

    it('enforces the sizes: at most 100 rules, match 1..200, reply 1..4000, nothing else', () => {
      const rule = { match: 'm', reply: 'r' };
      expect(parseBotRules(Array.from({ length: 100 }, () => rule))).to.have.length(100);
      expect(fieldOfFailure(Array.from({ length: 101 }, () => rule))).to.equal('rules');
      expect(fieldOfFailure([{ match: '', reply: 'r' }])).to.equal('rules.0.match');
      expect(fieldOfFailure([{ match: '   ', reply: 'r' }])).to.equal('rules.0.match');
      expect(fieldOfFailure([{ match: 'm'.repeat(201), reply: 'r' }])).to.equal('rules.0.match');
      expect(parseBotRules([{ match: 'm'.repeat(200), reply: 'r'.repeat(4000) }])).to.have.length(1);
      expect(fieldOfFailure([{ match: 'm', reply: '' }])).to.equal('rules.0.reply');
      expect(fieldOfFailure([{ match: 'm', reply: 'r'.repeat(4001) }])).to.equal('rules.0.reply');
      expect(fieldOfFailure([{ match: 'm', reply: 'r', extra: true }])).to.equal('rules.0');
      expect(fieldOfFailure('not a list')).to.equal('rules');
    });
  });

  describe('RuleBot', () => {
    it('answers with the first matching rule, else the fallback reply', async () => {
      const engine = new RuleBot();
      const profile = bot([{ match: 'hours', reply: 'Nine to five.' }]);
      expect(await engine.reply(ask(profile, 'Your HOURS?'))).to.equal('Nine to five.');
      expect(await engine.reply(ask(profile, 'Where are you?'))).to.equal(FALLBACK_REPLY);
      expect(await engine.reply(ask(bot([]), 'anything'))).to.equal(FALLBACK_REPLY);
    });

    it('does not stream: onDelta is not called', async () => {
      const deltas: string[] = [];
      await new RuleBot().reply(ask(bot([{ match: 'a', reply: 'b' }]), 'a'), (delta) => void deltas.push(delta));
      expect(deltas).to.deep.equal([]);
    });

    it('rejects with the reason of an already aborted signal', async () => {
      const reason = new Error('cancelled');
      const error = await new RuleBot().reply(ask(bot([]), 'x', { signal: AbortSignal.abort(reason) })).then(
        () => expect.fail('expected a rejection'),
        (failure: unknown) => failure,
      );
      expect(error).to.equal(reason);
    });
  });

  describe('createReplyEngine', () => {
    const calls: ReplyRequest[] = [];
    const fakeLlm: ReplyEngine = {
      reply: async (request, onDelta) => {
        calls.push(request);
        await onDelta?.('from ');
        await onDelta?.('llm');
        return 'from llm';
      },
    };
    const configured = { llm: { baseUrl: 'http://127.0.0.1:9/v1', apiKey: undefined, model: undefined } };
    beforeEach(() => {
      calls.length = 0;
    });

    it('answers from the rules first, without asking the LLM', async () => {
      const engine = createReplyEngine(configured, { llm: fakeLlm });
      expect(await engine.reply(ask(bot([{ match: 'hi', reply: 'Hello!' }], {}), 'hi there'))).to.equal('Hello!');
      expect(calls).to.have.length(0);
    });

    it('asks the LLM when no rule matches and the bot has llm settings, passing deltas through', async () => {
      const engine = createReplyEngine(configured, { llm: fakeLlm });
      const deltas: string[] = [];
      const request = ask(bot([{ match: 'hi', reply: 'Hello!' }], { systemPrompt: 'Be brief.' }), 'what is up?');
      expect(await engine.reply(request, (delta) => void deltas.push(delta))).to.equal('from llm');
      expect(deltas.join('')).to.equal('from llm');
      expect(calls).to.deep.equal([request]);
    });

    it('falls back when the bot has no llm settings, or the server has no LLM endpoint', async () => {
      expect(await createReplyEngine(configured, { llm: fakeLlm }).reply(ask(bot([]), 'question'))).to.equal(FALLBACK_REPLY);
      expect(await createReplyEngine({ llm: undefined }).reply(ask(bot([], { model: 'x' }), 'question'))).to.equal(FALLBACK_REPLY);
      expect(calls).to.have.length(0);
    });
  });
});
