import { UsersService } from '@app/auth';
import { bash, repoFile } from './monitoring.helpers';
import { startGateway, TestGateway } from './support/gateway';

/**
 * Every curl login of docs/runbook.md and docs/api.md, run as an operator pastes it, with an
 * admin password like docs/deployment.md's `openssl rand -base64 18` makes (`+`, `/`) plus the
 * other characters a form treats specially (`&`, `%`, `=`). With `-d "password=…"` a `+` arrived
 * as a space: 401 for about a third of generated passwords, and a lockout after five tries.
 */
const PASSWORD = 'Ab3+xYz/9Qw&Lm%7kP=q2Rs8Tu';

function loginLines(): string[] {
  return ['docs/runbook.md', 'docs/api.md'].flatMap((doc) =>
    repoFile(doc)
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => /^(TOKEN=\$\()?curl .*\/auth\/token/.test(line)),
  );
}

describe('docs: the login commands work with any admin password', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
    await gw.gateway.app.get(UsersService).setAdminPassword('admin', PASSWORD, 'test');
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('gets a token from every documented curl login', async () => {
    const lines = loginLines();
    expect(lines.length).toBeGreaterThanOrEqual(6);
    const failures: string[] = [];
    for (const line of lines) {
      const command = line.startsWith('TOKEN=')
        ? `${line}; printf %s "$TOKEN"`
        : line.replace('http://localhost:8000', '$SY');
      const result = await bash(command, { SY: gw.url, ADMIN_PASSWORD: PASSWORD });
      if (!/eyJ[\w-]+\.[\w-]+\.[\w-]+/.test(result.stdout))
        failures.push(`${line}\n  ${result.stdout.slice(0, 200)}${result.stderr.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  });
});
