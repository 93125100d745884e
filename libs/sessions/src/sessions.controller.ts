import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Patch,
  Post,
  UseGuards,
} from '@nestjs/common';
import { AdminGuard, CurrentAdmin, requireUuid } from '@app/auth';
import type { AdminIdentity } from '@app/auth';
import { parseAddSession } from './add-session.dto';
import { SessionsService } from './sessions.service';

/** Seed 000's session admin API; responses never carry a credential. */
@Controller('admin/sessions')
@UseGuards(AdminGuard)
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Get()
  async list() {
    return { sessions: await this.sessions.list() };
  }

  @Post()
  @HttpCode(201)
  add(@Body() body: unknown, @CurrentAdmin() admin: AdminIdentity) {
    return this.sessions.add(parseAddSession(body), admin.username);
  }

  @Post('health-check')
  @HttpCode(200)
  healthCheck(@CurrentAdmin() admin: AdminIdentity) {
    return this.sessions.healthCheckNow(admin.username);
  }

  @Get(':id')
  get(@Param('id') id: string) {
    return this.sessions.get(requireUuid(id));
  }

  @Patch(':id/activate')
  activate(@Param('id') id: string, @CurrentAdmin() admin: AdminIdentity) {
    return this.sessions.activate(requireUuid(id), admin.username);
  }

  @Patch(':id/quarantine')
  quarantine(@Param('id') id: string, @CurrentAdmin() admin: AdminIdentity) {
    return this.sessions.quarantine(requireUuid(id), admin.username);
  }

  @Delete(':id')
  remove(@Param('id') id: string, @CurrentAdmin() admin: AdminIdentity) {
    return this.sessions.remove(requireUuid(id), admin.username);
  }
}
