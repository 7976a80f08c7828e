import { promises as fs } from 'node:fs';
import path from 'node:path';
import { OPENAPI_PATH, openApiText } from './openapi';

/** `npm run openapi`: regenerates the committed OpenAPI document from the schemas. */
async function main(): Promise<void> {
  const file = path.resolve(__dirname, '..', OPENAPI_PATH);
  await fs.writeFile(file, openApiText());
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
