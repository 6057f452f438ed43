// A secret value (password, private key) that cannot end up in logs by accident: JSON (pino),
// util.inspect (console.log) and string conversion all print "[redacted]". Only reveal() gives the
// value, at the one place that hands it to a client library.
const REDACTED = '[redacted]';

export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Secret(${REDACTED})`;
  }
}
