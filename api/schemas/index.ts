/**
 * The API's request and response schemas (zod) and its route table: one import for the api, the
 * OpenAPI generator, and the CLI/SDK (`z.input<…>` for what to send, `z.infer<…>` for what comes back).
 */
export * from './common';
export * from './repos';
export * from './runs';
export * from './settings';
export * from './admin';
export * from './audit';
export * from './browse';
export * from './routes';
