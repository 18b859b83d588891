import { controlCommand } from './control.js';

export const help = `upshift cancel <id>

Stops the campaign: every target that has not started is recorded skipped/CANCELLED; targets in
flight finish. Running it again finishes an interrupted cancel.

Examples:
  upshift cancel onboarding-v3
  upshift report onboarding-v3 --outcome skipped     # what the cancel left out`;

export const run = controlCommand('cancel', help);
