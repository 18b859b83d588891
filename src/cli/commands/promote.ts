import { controlCommand } from './control.js';

export const help = `upshift promote <id>

Starts the next step of a staged rollout waiting at a manual gate (state "gated").

Examples:
  upshift status onboarding-v3       # check the step's failures first
  upshift promote onboarding-v3`;

export const run = controlCommand('promote', help);
