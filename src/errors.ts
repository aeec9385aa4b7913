/**
 * The closed set of domain errors. Domain code throws these; one onError (http/problem.ts)
 * maps them to application/problem+json. They carry no Elysia types so services can use them.
 */
export type FieldError = { path: string; message: string };

export abstract class DomainError extends Error {
  abstract readonly status: number;
  abstract readonly title: string;
  /** `members`: extra members for the problem body (e.g. `allowed` on an illegal transition). */
  constructor(
    detail: string,
    private readonly members: Record<string, unknown> = {},
  ) {
    super(detail);
  }
  extra(): Record<string, unknown> {
    return this.members;
  }
}

/** The base of one kind of domain error: its HTTP status and problem title. */
function kind(status: number, title: string) {
  return class extends DomainError {
    readonly status = status;
    readonly title = title;
  };
}

export class InvalidInput extends kind(400, "Invalid input") {
  constructor(detail: string, readonly errors: FieldError[] = []) {
    super(detail, { errors });
  }
}

export class Unauthorized extends kind(401, "Unauthorized") {}

export class Forbidden extends kind(403, "Forbidden") {}

export class NotFound extends kind(404, "Not found") {}

export class Conflict extends kind(409, "Conflict") {}

/** 409 for a status change this caller may not make now; lists the moves it may make. */
export class IllegalTransition extends kind(409, "Illegal transition") {
  constructor(detail: string, readonly allowed: string[]) {
    super(detail, { allowed });
  }
}

/** If-Match named a version that is not the current one. */
export class PreconditionFailed extends kind(412, "Precondition failed") {
  constructor(detail: string, readonly currentVersion: number) {
    super(detail, { version: currentVersion });
  }
}

export class PayloadTooLarge extends kind(413, "Payload too large") {}

/** A request body that is not JSON (`Content-Type` other than application/json). */
export class UnsupportedMediaType extends kind(415, "Unsupported media type") {}

/** Valid JSON that the domain refuses (closed restaurant, outside radius, unknown item). */
export class Unprocessable extends kind(422, "Unprocessable") {}

/** IETF Idempotency-Key draft: the key was already used with a different request body. */
export class IdempotencyKeyReused extends kind(422, "Idempotency-Key is already used") {}

/** IETF Idempotency-Key draft: the first request with this key has not finished yet. */
export class IdempotencyKeyInFlight extends kind(409, "A request is outstanding for this Idempotency-Key") {}

export class RateLimited extends kind(429, "Too many requests") {
  constructor(detail: string, readonly retryAfterSeconds: number) {
    super(detail);
  }
}

/** Sent with `Retry-After` when `retryAfterSeconds` is set: the condition is transient. */
export class ServiceUnavailable extends kind(503, "Service unavailable") {
  constructor(detail: string, readonly retryAfterSeconds?: number) {
    super(detail);
  }
}
