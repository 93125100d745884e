export { GenerationModule } from './generation.module';
export { ResponseCacheModule, ResponseCacheService } from './cache';
export type { CacheLookup, CacheResult, CacheStats } from './cache';
export { ConversationsModule, ConversationService, CONVERSATION_HEADER } from './conversations';
export { ChatCompletionsService } from './chat/chat-completions.service';
export type { ChatResult, SseSink } from './chat/chat-result';
export { ImagesService } from './images/images.service';
export { GenerationPipeline } from './pipeline/generation-pipeline.service';
export type { GenerationPlugin } from './pipeline/generation-pipeline.service';
export type {
  GenerationContext,
  GenerationKind,
  GenerationOutcome,
  StoredAnswer,
} from './pipeline/generation-context';
export { parseBody } from './pipeline/validation';
export { chatRequestSchema } from './chat/chat-request.schema';
export type { ChatRequest } from './chat/chat-request.schema';
export { imagesRequestSchema } from './images/images-request.schema';
export type { ImagesRequest } from './images/images-request.schema';
export { completionToChunks } from './chat/stream-accumulator';
export { ProviderRegistry } from './providers/provider-registry.service';
export { ProvidersFileService } from './providers/providers-file.service';
export { ProvidersFileError } from './providers/providers-file';
export type { ProvidersFile, ProviderDefinition } from './providers/providers-file';
export type { ProviderConfig, SessionAuth } from './providers/provider.types';
export { AttemptRecorder } from './routing/attempt-recorder.service';
export { UpstreamCredentials } from './routing/upstream-credentials.service';
export type {
  AttemptReport,
  CredentialLease,
  CredentialSource,
} from './routing/upstream-credentials.service';
export type {
  AttemptOutcome,
  UpstreamAuth,
  ChatCompletion,
  ImagesResponse,
  Usage,
} from './upstream/upstream.types';
export { estimateTokens, messagesText } from './upstream/tokens';
