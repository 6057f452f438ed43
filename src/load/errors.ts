// Errors of the load generator, each with a stable `code`; option errors name the offending option.

export class LoadError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoadError';
    this.code = code;
  }
}

/** A bad option: `option` is its name in LoadOptions (the CLI flag is the same name in kebab-case). */
export class LoadOptionsError extends LoadError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('load_option_invalid', `${option}: ${message}`);
    this.name = 'LoadOptionsError';
    this.option = option;
  }
}
