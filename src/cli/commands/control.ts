import { cancelCampaign, pauseCampaign, promoteCampaign, resumeCampaign } from '../../producer/index.js';
import { InputError, type UpshiftConfig } from '../../shared/index.js';
import { escapeControlChars } from '../../shared/text.js';
import { parseFlags } from '../flags.js';
import { withRedis } from '../io.js';

/** The handler of `upshift pause|resume|cancel|promote <id>`: the four differ only in the control call and its help. */
export function controlCommand(name: 'pause' | 'resume' | 'cancel' | 'promote', help: string) {
  return async (argv: string[], config: UpshiftConfig): Promise<void> => {
    const { values, positionals } = parseFlags(argv, {});
    if (values.help) return void console.log(help);
    const id = positionals[0];
    if (!id) throw new InputError('arguments', 'missing <id>');
    await withRedis(config, async (redis) => {
      const opts = { redis, prefix: config.prefix };
      if (name === 'cancel') {
        const drained = await cancelCampaign(id, opts);
        console.log(`campaign ${escapeControlChars(id)} cancelled: ${drained} targets that had not started recorded skipped/CANCELLED`);
        return;
      }
      const run = { pause: pauseCampaign, resume: resumeCampaign, promote: promoteCampaign }[name];
      console.log(escapeControlChars(`campaign ${id}: ${await run(id, opts)}`));
    });
  };
}
