// Setup of every file of the unit project: the unit tests must run on a
// machine where the native addon is not built (a contributor without build
// tools, or without root), so loading any compiled addon fails the test that
// tried, by name, instead of passing only where the addon happens to exist.

process.dlopen = (_module: unknown, filename: string): never => {
  throw new Error(`unit tests must not load a compiled addon (${filename}): use src/core/pure-segmenter.ts, or move the test to test/integration`);
};
