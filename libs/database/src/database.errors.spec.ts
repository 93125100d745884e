import { isConnectionError, mayHaveRun } from './database.errors';

const failure = (code: string | undefined, message = 'x') =>
  Object.assign(new Error(message), { code });

describe('connection failures', () => {
  it.each([
    ['refused', failure('ECONNREFUSED')],
    ['unknown host', failure('ENOTFOUND')],
    ['starting up', failure('57P03')],
    ['pool connect timeout', failure(undefined, 'timeout exceeded when trying to connect')],
    ['pool ended', failure(undefined, 'Cannot use a pool after calling end on the pool')],
  ])('%s: unreachable, and no statement can have run', (_, error) => {
    expect(isConnectionError(error)).toBe(true);
    expect(mayHaveRun(error)).toBe(false);
  });

  it.each([
    ['reset', failure('ECONNRESET')],
    ['terminated by an admin', failure('57P01')],
    ['server crashed', failure('57P02')],
    ['connection closed mid-query', failure(undefined, 'Connection terminated unexpectedly')],
    ['no reply within query_timeout', failure(undefined, 'Query read timeout')],
  ])('%s: unreachable, and the statement may have run', (_, error) => {
    expect(isConnectionError(error)).toBe(true);
    expect(mayHaveRun(error)).toBe(true);
  });

  it.each([
    ['a unique violation', failure('23505', 'duplicate key value')],
    ['a syntax error', failure('42601', 'syntax error')],
    ['not an error at all', undefined],
  ])('%s: not a connection failure', (_, error) => {
    expect(isConnectionError(error)).toBe(false);
    expect(mayHaveRun(error)).toBe(false);
  });
});
