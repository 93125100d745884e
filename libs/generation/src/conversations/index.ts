export { ConversationsModule } from './conversations.module';
export { ConversationService, CONVERSATION_HEADER } from './conversation.service';
export type { ConversationTurn } from './conversation.service';
