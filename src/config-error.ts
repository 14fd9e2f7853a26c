// The error of an invalid configuration, in a module of its own so that the
// CLI can recognise it without loading the schema (and zod) first.

/** One line per problem, each naming the field (or flag) that is wrong. */
export class ConfigError extends Error {}
