// The package's version, for --version and QMP's query-version.
import { readFileSync } from 'node:fs';

/** package.json sits one level above both src/ and dist/. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
