export const handler = async () => ({ kind: 'mjs', topLevelAwait: await Promise.resolve(42) });
