// An ES module by its package.json's "type": "module".
import { sep } from 'node:path';

const loadedAt = typeof import.meta.url;

export const handler = async (event, context) => ({ kind: 'esm-by-package', sep, loadedAt, name: context.functionName });
