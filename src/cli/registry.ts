import type { CliCommand } from "./command.js";
import { datasetCommand } from "./commands/dataset.js";
import { demoCommand } from "./commands/demo.js";
import { evalCommand } from "./commands/eval.js";
import { finetuneCommand } from "./commands/finetune.js";
import { pretrainCommand } from "./commands/pretrain.js";
import { promptCommand } from "./commands/prompt.js";
import { serveCommand } from "./commands/serve.js";
import { simCommand } from "./commands/sim.js";

/** Every CLI verb, in the order --help lists them. Add a command here and nowhere else. */
export const COMMANDS: ReadonlyArray<CliCommand> = [demoCommand, promptCommand, datasetCommand, simCommand, pretrainCommand, finetuneCommand, serveCommand, evalCommand];
