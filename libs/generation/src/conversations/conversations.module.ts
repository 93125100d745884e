import { Module } from '@nestjs/common';
import { GenerationModule } from '../generation.module';
import { ConversationPlugin } from './conversation.plugin';
import { ConversationService } from './conversation.service';

/** Registers X-Conversation-Id handling in the chat pipeline (see ConversationPlugin). */
@Module({
  imports: [GenerationModule],
  providers: [ConversationService, ConversationPlugin],
  exports: [ConversationService],
})
export class ConversationsModule {}
