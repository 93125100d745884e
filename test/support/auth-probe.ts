import { Controller, Get, Module, UseGuards } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import { ApiKeyGuard, CurrentPrincipal, RequireScopes } from '@app/auth';
import type { Principal } from '@app/auth';
import { AppModule } from '../../apps/gateway/src/app.module';

/** Two public test routes that only ApiKeyGuard stands in front of. */
@Controller('probe')
@UseGuards(ApiKeyGuard)
export class AuthProbeController {
  @Get('chat')
  @RequireScopes('chat')
  chat(@CurrentPrincipal() principal: Principal): Principal {
    return principal;
  }

  @Get('images')
  @RequireScopes('images')
  images(@CurrentPrincipal() principal: Principal): Principal {
    return principal;
  }
}

@Module({})
class AuthProbeRootModule {}

/**
 * Makes every gateway started afterwards in this test file also serve /probe/*, so the API-key
 * guard can be exercised over HTTP independently of the generation routes.
 */
export function installAuthProbe(): void {
  const original = AppModule.forRoot.bind(AppModule);
  jest
    .spyOn(AppModule, 'forRoot')
    .mockImplementation((...args: Parameters<typeof AppModule.forRoot>): DynamicModule => ({
      module: AuthProbeRootModule,
      imports: [original(...args)],
      controllers: [AuthProbeController],
    }));
}

/** Reads one labelled sample of a counter from /metrics (0 when absent). */
export async function metricValue(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
}
