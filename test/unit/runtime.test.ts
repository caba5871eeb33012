import { expect } from 'chai';
import { ownModuleCommand, runsCompiled } from '../../shared/runtime.js';

/** Which file a module starts as a new process or thread: TypeScript through tsx, or the compiled build's JavaScript. */
describe('runtime: TypeScript through tsx or compiled JavaScript', () => {
  it('a .ts module runs through tsx; a .js module is compiled', () => {
    expect(runsCompiled('file:///app/scripts/commands/start.ts')).to.equal(false);
    expect(runsCompiled('file:///app/dist/scripts/commands/start.js')).to.equal(true);
    expect(runsCompiled(import.meta.url)).to.equal(false); // the tests themselves run through tsx
  });

  it('starts the sibling TypeScript module with tsx loaded, or the compiled sibling as it is', () => {
    expect(ownModuleCommand('file:///app/scripts/commands/start.ts', '../cli')).to.deep.equal({ path: '/app/scripts/cli.ts', nodeArgs: ['--import', 'tsx'] });
    expect(ownModuleCommand('file:///app/dist/scripts/commands/start.js', '../cli')).to.deep.equal({ path: '/app/dist/scripts/cli.js', nodeArgs: [] });
  });
});
