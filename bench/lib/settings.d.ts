// Types for settings.js, as far as bench/stats.spec.ts uses them.
export interface Scenario {
  id: string;
  title: string;
  c: number;
  delayMs: number;
  targets: string[];
}
export interface Settings {
  candidateMain: string | null;
  candidateEnv: Record<string, string>;
  candidateNodeArgs: string[];
  scenarios: Scenario[];
}
export function readSettings(env: Record<string, string | undefined>): Settings;
