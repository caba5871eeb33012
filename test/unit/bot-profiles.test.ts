import { expect } from 'chai';
import type { BotProfile } from '../../adapters/llm/index.js';
import { BotProfileCache, NO_VERSION } from '../../workers/botProfiles.js';

const profile = (reply: string): BotProfile => ({ name: 'b', rules: [{ match: 'hi', reply }], llm: null });

describe('reply worker: the bot profile cache', () => {
  it('holds no version of an unknown bot, so the turn statement sends the profile', () => {
    expect(new BotProfileCache().versionOf('bot-1')).to.equal(NO_VERSION);
  });

  it('keeps a sent profile with its version and gives it back only for that version', () => {
    const cache = new BotProfileCache();
    const first = profile('one');
    expect(cache.profileAt('bot-1', '100', first)).to.equal(first);
    expect(cache.versionOf('bot-1')).to.equal('100');
    expect(cache.profileAt('bot-1', '100', null)).to.equal(first);
    expect(cache.profileAt('bot-1', '101', null), 'a changed bot is never answered from the old copy').to.equal(undefined);
    const second = profile('two');
    expect(cache.profileAt('bot-1', '101', second)).to.equal(second);
    expect(cache.versionOf('bot-1')).to.equal('101');
  });

  it('stays bounded: once full, it starts over', () => {
    const cache = new BotProfileCache(2);
    cache.profileAt('a', '1', profile('a'));
    cache.profileAt('b', '1', profile('b'));
    cache.profileAt('c', '1', profile('c'));
    expect([cache.versionOf('a'), cache.versionOf('b'), cache.versionOf('c')]).to.deep.equal([NO_VERSION, NO_VERSION, '1']);
  });
});
