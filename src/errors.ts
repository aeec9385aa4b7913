/**
 * The closed set of domain errors. Domain code throws these; one onError (http/problem.ts)
 * maps them to application/problem+json. They carry no Elysia types so services can use them.
 */
export type FieldError = { path: string; message: string };

export abstract class DomainError extends Error {
  abstract readonly status: number;
  abstract readonly title: string;
  /** Extra members for the problem body (e.g. `allowed` on an illegal transition). */
  extra(): Record<string, unknown> {
    return {};
  }
}

export class InvalidInput extends DomainError {
  readonly status = 400;
  readonly title = "Invalid input";
  constructor(detail: string, readonly errors: FieldError[] = []) {
    super(detail);
  }
  override extra() {
    return { errors: this.errors };
  }
}

export class Unauthorized extends DomainError {
  readonly status = 401;
  readonly title = "Unauthorized";
}

export class Forbidden extends DomainError {
  readonly status = 403;
  readonly title = "Forbidden";
}

export class NotFound extends DomainError {
  readonly status = 404;
  readonly title = "Not found";
}

export class Conflict extends DomainError {
  readonly status = 409;
  readonly title = "Conflict";
}

/** 409 for a status change this caller may not make now; lists the moves it may make. */
export class IllegalTransition extends DomainError {
  readonly status = 409;
  readonly title = "Illegal transition";
  constructor(detail: string, readonly allowed: string[]) {
    super(detail);
  }
  override extra() {
    return { allowed: this.allowed };
  }
}

/** If-Match named a version that is not the current one. */
export class PreconditionFailed extends DomainError {
  readonly status = 412;
  readonly title = "Precondition failed";
  constructor(detail: string, readonly currentVersion: number) {
    super(detail);
  }
  override extra() {
    return { version: this.currentVersion };
  }
}

export class PayloadTooLarge extends DomainError {
  readonly status = 413;
  readonly title = "Payload too large";
}

/** A request body that is not JSON (`Content-Type` other than application/json). */
export class UnsupportedMediaType extends DomainError {
  readonly status = 415;
  readonly title = "Unsupported media type";
}

/** Valid JSON that the domain refuses (closed restaurant, outside radius, unknown item). */
export class Unprocessable extends DomainError {
  readonly status = 422;
  readonly title = "Unprocessable";
}

/** IETF Idempotency-Key draft: the key was already used with a different request body. */
export class IdempotencyKeyReused extends DomainError {
  readonly status = 422;
  readonly title = "Idempotency-Key is already used";
}

/** IETF Idempotency-Key draft: the first request with this key has not finished yet. */
export class IdempotencyKeyInFlight extends DomainError {
  readonly status = 409;
  readonly title = "A request is outstanding for this Idempotency-Key";
}

export class RateLimited extends DomainError {
  readonly status = 429;
  readonly title = "Too many requests";
  constructor(detail: string, readonly retryAfterSeconds: number) {
    super(detail);
  }
}

export class ServiceUnavailable extends DomainError {
  readonly status = 503;
  readonly title = "Service unavailable";
  /** Sent as `Retry-After` when set: the condition is transient. */
  constructor(detail: string, readonly retryAfterSeconds?: number) {
    super(detail);
  }
}
