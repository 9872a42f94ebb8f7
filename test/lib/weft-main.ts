// Runs the weft CLI from the TypeScript sources (tests do not depend on a dist/ build).
import { main } from '../../agent/cli/main';

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
  process.stderr.write(`weft: ${e.message}\n`);
  process.exitCode = 1;
});
