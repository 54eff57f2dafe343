// Errors that name the thing at fault and the value, shared by every layer.

/** Bad user input: argv, config file, control API arguments. `option` and `value` name what is wrong. */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly option?: string,
    readonly value?: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** A request that is well-formed but cannot be carried out now (in use, not found, ...). */
export class StateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateError';
  }
}
