import { Module } from '@nestjs/common';
import { CircuitBreakerModule } from '@app/circuit-breaker';
import { ChatCompletionsService } from './chat/chat-completions.service';
import { GenerationController } from './generation.controller';
import { ImagesService } from './images/images.service';
import { GenerationContextFactory } from './pipeline/generation-context.factory';
import { GenerationPipeline } from './pipeline/generation-pipeline.service';
import { ProviderRegistry } from './providers/provider-registry.service';
import { ProvidersFileService } from './providers/providers-file.service';
import { ProvidersController } from './providers/providers.controller';
import { ProvidersRepository } from './providers/providers.repository';
import { AttemptRecorder } from './routing/attempt-recorder.service';
import { UpstreamCredentials } from './routing/upstream-credentials.service';
import { UpstreamRouter } from './routing/upstream-router.service';
import { UpstreamClients } from './upstream/upstream-clients.service';

@Module({
  imports: [CircuitBreakerModule],
  controllers: [GenerationController, ProvidersController],
  providers: [
    AttemptRecorder,
    ChatCompletionsService,
    GenerationContextFactory,
    GenerationPipeline,
    ImagesService,
    ProviderRegistry,
    ProvidersFileService,
    ProvidersRepository,
    UpstreamClients,
    UpstreamCredentials,
    UpstreamRouter,
  ],
  exports: [
    AttemptRecorder,
    ChatCompletionsService,
    GenerationPipeline,
    ImagesService,
    ProviderRegistry,
    ProvidersFileService,
    UpstreamCredentials,
    CircuitBreakerModule,
  ],
})
export class GenerationModule {}
