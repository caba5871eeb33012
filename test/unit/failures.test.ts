import { expect } from 'chai';
import { ConflictError, UnavailableError } from '../../shared/errors.js';
import { clientErrorOf, isDependencyFailure } from '../../shared/failures.js';

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code });
const named = (name: string, message = 'x'): Error => Object.assign(new Error(message), { name });

describe('failure classification (shared/failures.ts)', () => {
  it('calls a dependency that does not answer `unavailable`', () => {
    const outages: unknown[] = [
      withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      withCode('read ECONNRESET', 'ECONNRESET'),
      withCode('terminating connection due to administrator command', '57P01'),
      withCode('the database system is starting up', '57P03'),
      withCode('connection failure', '08006'),
      withCode('sorry, too many clients already', '53300'),
      new Error('Connection terminated unexpectedly'),
      new Error('timeout exceeded when trying to connect'),
      new Error('Connection is closed.'),
      named('MaxRetriesPerRequestError', 'Reached the max retries per request limit (which is 20).'),
      named('KnexTimeoutError', 'Knex: Timeout acquiring a connection. The pool is probably full.'),
      new AggregateError([withCode('connect ECONNREFUSED ::1:6379', 'ECONNREFUSED'), withCode('connect ECONNREFUSED 127.0.0.1:6379', 'ECONNREFUSED')]),
      new TypeError('fetch failed', { cause: withCode('connect ECONNREFUSED', 'ECONNREFUSED') }),
      new Error('query failed', { cause: withCode('x', 'ETIMEDOUT') }),
      new UnavailableError('Qdrant is not reachable'),
    ];
    for (const error of outages) {
      expect(isDependencyFailure(error), String(error)).to.equal(true);
      const client = clientErrorOf(error);
      expect(client).to.be.instanceOf(UnavailableError);
      expect((client as UnavailableError).retryAfterMs).to.be.greaterThan(0);
    }
  });

  it('keeps bugs and the server\'s own answers apart: SQL errors, type errors and AppErrors are not outages', () => {
    const bugs: unknown[] = [
      withCode('duplicate key value violates unique constraint', '23505'),
      withCode('syntax error at or near "selec"', '42601'),
      withCode('permission denied for table users', '42501'),
      new TypeError("Cannot read properties of undefined (reading 'id')"),
      new RangeError('Invalid array length'),
      'a string',
      undefined,
      null,
    ];
    for (const error of bugs) {
      expect(isDependencyFailure(error), String(error)).to.equal(false);
      expect(clientErrorOf(error)).to.equal(undefined);
    }
    const conflict = new ConflictError('handoff_required', 'Take it over first');
    expect(clientErrorOf(conflict)).to.equal(conflict);
    expect(isDependencyFailure(new ConflictError('x', 'y'))).to.equal(false);
  });

  it('does not loop on a cause cycle', () => {
    const first = new Error('first');
    const second = new Error('second', { cause: first });
    Object.assign(first, { cause: second });
    expect(isDependencyFailure(first)).to.equal(false);
  });
});
