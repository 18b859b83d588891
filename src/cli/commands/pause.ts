import { controlCommand } from './control.js';

export const help = `upshift pause <id>

No new target of the campaign starts once this returns (dispatched ones wait); targets in flight
finish. Resume with "upshift resume <id>".

Examples:
  upshift pause onboarding-v3
  upshift pause onboarding-v3 && upshift status onboarding-v3 --watch`;

export const run = controlCommand('pause', help);
