import {
  credentialHash,
  isEncrypted,
  maskCredential,
  SessionCipher,
  SessionDecryptError,
} from './session-cipher';

const KEY_A = 'a'.repeat(64);
const KEY_B = 'b'.repeat(64);

describe('SessionCipher', () => {
  it('round-trips and never stores the plain text', () => {
    const cipher = new SessionCipher(KEY_A);
    const stored = cipher.encrypt('sso=secret-cookie-value');
    expect(stored).toMatch(/^enc:v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(stored).not.toContain('secret-cookie-value');
    expect(cipher.decrypt(stored)).toBe('sso=secret-cookie-value');
  });

  it('uses a fresh IV each time', () => {
    const cipher = new SessionCipher(KEY_A);
    expect(cipher.encrypt('x')).not.toBe(cipher.encrypt('x'));
  });

  it('rejects a wrong key and a tampered value', () => {
    const stored = new SessionCipher(KEY_A).encrypt('sso=1');
    expect(() => new SessionCipher(KEY_B).decrypt(stored)).toThrow(SessionDecryptError);
    const parts = stored.split(':');
    parts[4] = Buffer.from('tampered').toString('base64');
    expect(() => new SessionCipher(KEY_A).decrypt(parts.join(':'))).toThrow(SessionDecryptError);
    expect(() => new SessionCipher(KEY_A).decrypt('enc:v1:garbage')).toThrow(SessionDecryptError);
  });

  it('reads values under the previous key during a rotation', () => {
    const old = new SessionCipher(KEY_A).encrypt('sso=rotating');
    const rotating = new SessionCipher(KEY_B, KEY_A);
    expect(rotating.open(old)).toEqual({ plain: 'sso=rotating', underCurrentKey: false });
    expect(rotating.open(rotating.encrypt('sso=new'))).toEqual({
      plain: 'sso=new',
      underCurrentKey: true,
    });
  });

  it('passes hand-inserted plain text through', () => {
    const cipher = new SessionCipher(KEY_A);
    expect(isEncrypted('sso=plain')).toBe(false);
    expect(cipher.open('sso=plain')).toEqual({ plain: 'sso=plain', underCurrentKey: false });
  });

  it('hashes like Postgres encode(sha256(...), hex)', () => {
    expect(credentialHash('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('masks credentials', () => {
    expect(maskCredential('sso=abcdefghijklmnopqrstuvwxyz')).toBe('sso=…wxyz');
    expect(maskCredential('sso=short')).toBe('sso=…');
    expect(maskCredential('sk-0123456789abcdefghij')).toBe('…ghij');
    expect(maskCredential('tiny')).toBe('…');
  });

  it('never shows a padded base64 token as a cookie name', () => {
    // The text before the first '=' of these is the secret itself.
    expect(maskCredential('f20G6grsCio7HR9WlZ9kYQ==')).toBe('…YQ==');
    expect(maskCredential('c3ZjLXVzZXI6UzNjcmV0UGFzc3cwcmQ=')).toBe('…cmQ=');
    expect(maskCredential('dGlueQ==')).toBe('…');
    expect(maskCredential('a/b+c=defghijklmnopqrstuvw')).toBe('…tuvw');
  });
});
