/** How a command reports: human lines, or one JSON document with --json. */
export interface Out {
  json: boolean;
  /** Prints a result: the object as JSON, or the text for people. */
  result(data: unknown, text: string): void;
  info(text: string): void;
}

export function makeOut(json: boolean): Out {
  return {
    json,
    result(data, text) {
      process.stdout.write(
        json
          ? `${JSON.stringify(data, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`
          : `${text}\n`,
      );
    },
    info(text) {
      if (!json) process.stderr.write(`${text}\n`);
    },
  };
}

/** An expected failure: printed as one line, exit code 1. */
export class CliError extends Error {
  override name = 'CliError';
}
