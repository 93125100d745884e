export { loadConfig, loadConfigOrExit, ConfigValidationError } from './app-config';
export type { AppConfig } from './app-config';
export { ConfigModule, APP_CONFIG } from './config.module';
