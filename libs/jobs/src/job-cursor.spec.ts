import { decodeCursor, encodeCursor } from './job-cursor';

const ID = '00000000-0000-0000-0000-000000000000';
const cursorOf = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

describe('decodeCursor', () => {
  it('reads back what encodeCursor wrote', () => {
    const createdAt = new Date('2026-03-01T12:34:56.789Z');
    expect(decodeCursor(encodeCursor({ createdAt, id: ID }))).toEqual({ createdAt, id: ID });
  });

  it.each(['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z'])(
    'takes a date Postgres stores: %s',
    (at) => {
      expect(decodeCursor(cursorOf(`${at}|${ID}`))?.createdAt.toISOString()).toBe(at);
    },
  );

  it.each([
    '-271821-04-20T00:00:00.000Z',
    '-004714-01-01T00:00:00.000Z',
    '0000-12-31T23:59:59.999Z',
    '+010000-01-01T00:00:00.000Z',
    '+275760-09-13T00:00:00.000Z',
    'not a date',
    '',
  ])('refuses a date outside years 1 to 9999 as invalid_cursor: %s', (at) => {
    expect(() => decodeCursor(cursorOf(`${at}|${ID}`))).toThrow(
      expect.objectContaining({ status: 400, code: 'invalid_cursor', param: 'cursor' }),
    );
  });

  it('refuses a cursor without a UUID', () => {
    expect(() => decodeCursor(cursorOf('2026-03-01T00:00:00.000Z|nope'))).toThrow(
      expect.objectContaining({ code: 'invalid_cursor' }),
    );
  });
});
