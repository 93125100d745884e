import { Controller, Get, UseGuards } from '@nestjs/common';
import { AdminGuard } from '@app/auth';
import { AdminResilienceService } from './admin-resilience.service';

@Controller('admin/resilience')
@UseGuards(AdminGuard)
export class AdminResilienceController {
  constructor(private readonly resilience: AdminResilienceService) {}

  @Get()
  get() {
    return this.resilience.snapshot();
  }
}
