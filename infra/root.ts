import path from 'node:path';

/** The project's root folder (where package.json is). */
export const ROOT = path.resolve(__dirname, '..');
