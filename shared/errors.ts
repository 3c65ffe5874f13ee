/**
 * Typed errors. Every refusal in ganfleet is one of these: a stable `code` that tests and
 * operators can match on, and, where the error ends a WebSocket connection, the close code the
 * peer sees (4000–4999 is the range RFC 6455 leaves to applications).
 */

/** WebSocket close codes sent by ganfleet. The reason string carries the human-readable detail. */
export const CloseCode = {
  /** Normal end of training: the coordinator is done with this worker. */
  DONE: 1000,
  /** The coordinator is shutting down (SIGINT/SIGTERM). */
  GOING_AWAY: 1001,
  /** A frame could not be decoded or failed validation (shape, types, lengths). */
  BAD_FRAME: 4000,
  /** The peer speaks another PROTOCOL_VERSION. */
  PROTOCOL_VERSION: 4001,
  /** The peer's parameter manifest (model architecture) differs. */
  MANIFEST_MISMATCH: 4002,
  /** The peer's dataset differs (hash of the IDX files). */
  DATASET_MISMATCH: 4003,
  /** A well-formed message arrived in a state where it is not allowed. */
  UNEXPECTED_MESSAGE: 4004,
  /** A result did not match its assignment (step, phase, length) or held NaN/Inf. */
  BAD_RESULT: 4005,
  /** The peer did not say hello in time. */
  HELLO_TIMEOUT: 4006,
  /** The worker failed while computing (backend error, out of memory). */
  WORKER_FAILED: 4007,
  /** The worker stopped answering pings. */
  HEARTBEAT_TIMEOUT: 4008,
  /** The worker did not prove it mapped the shared-memory segments it was offered (it then uses its socket). */
  SHM_REFUSED: 4009,
  /** A frame larger than the protocol's largest (sent by ws itself). */
  TOO_BIG: 1009,
  /** An unexpected failure on this side (a bug): the peer may retry. */
  INTERNAL_ERROR: 1011,
} as const;
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Base class of every error ganfleet throws on purpose. */
export class GanfleetError extends Error {
  /** Stable, machine-matchable identifier, e.g. `ERR_BAD_FRAME`. */
  readonly code: string;
  /** WebSocket close code, when this error ends a connection. */
  readonly closeCode: CloseCodeValue | undefined;

  constructor(code: string, message: string, options: { closeCode?: CloseCodeValue; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.closeCode = options.closeCode;
  }
}

/** Bad command-line usage: an unknown flag, a malformed value. The CLI exits 2. */
export class UsageError extends GanfleetError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

/** A data folder or data file that cannot be used: names the file and what is wrong. */
export class DataError extends GanfleetError {
  constructor(message: string) {
    super('ERR_DATA', message);
  }
}

/** A frame or message that breaks the protocol. Always ends the connection. */
export class ProtocolError extends GanfleetError {
  constructor(code: string, message: string, closeCode: CloseCodeValue) {
    super(code, message, { closeCode });
  }
}

/** A requested compute backend that cannot be loaded. */
export class BackendError extends GanfleetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_BACKEND', message, { cause });
  }
}

/** A checkpoint file that cannot be read or written. */
export class CheckpointError extends GanfleetError {
  constructor(message: string, cause?: unknown) {
    super('ERR_CHECKPOINT', message, { cause });
  }
}
