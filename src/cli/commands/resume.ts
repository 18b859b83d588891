import { controlCommand } from './control.js';

export const help = `upshift resume <id>

Continues a paused campaign where it stopped, including one paused by its failure budget
(pausedReason FAILURE_BUDGET_EXCEEDED), whose budget is then judged afresh.

Examples:
  upshift resume onboarding-v3
  upshift resume onboarding-v3 && upshift status onboarding-v3 --watch`;

export const run = controlCommand('resume', help);
