// The engine's one mingo context: every stock operator plus the geo query operators mingo lacks,
// built once. mingo copies its whole operator table whenever it is handed plain options (every
// Query, Aggregator and update), which costs more than a simple query itself; handing it its own
// prepared ComputeOptions instead skips the copy.

import type { Document } from "bson";
import { Aggregator } from "mingo/aggregator";
import { Context, ProcessingMode, evalExpr } from "mingo/core";
import * as accumulatorOperators from "mingo/operators/accumulator";
import * as expressionOperators from "mingo/operators/expression";
import * as pipelineOperators from "mingo/operators/pipeline";
import * as projectionOperators from "mingo/operators/projection";
import * as queryOperators from "mingo/operators/query";
import * as windowOperators from "mingo/operators/window";
import { Query } from "mingo/query";
import * as updateOperators from "mingo/operators/update";
import { CommandError, ErrorCode, badValue } from "./errors";
import { geoIntersectsMatches, geoWithinMatches } from "./geometry";
import { isPlainObject, rawPathValues } from "./values";

export { ProcessingMode };

export type Variables = Record<string, unknown>;

type Operators = NonNullable<Parameters<typeof Context.init>[0]>;
type MingoObject = Parameters<Query["test"]>[0];

const GEO_NEAR_NOT_ALLOWED = 5626500;

function nearNotAllowed(): never {
  throw new CommandError(
    GEO_NEAR_NOT_ALLOWED,
    "$geoNear, $near, and $nearSphere are not allowed in this context, as these operators require sorting geospatial data. If you do not need sort, consider using $geoWithin instead.",
  );
}

/** A geo operator over the raw values at a path (a legacy [lng, lat] pair is one value, not two). */
function geoOperator(name: string, matches: (value: unknown, spec: Record<string, unknown>) => boolean) {
  return (selector: string, value: unknown) => {
    if (!isPlainObject(value)) throw badValue(`${name} requires an object argument`);
    matches(undefined, value); // validates the spec up front (BadValue)
    return (obj: MingoObject) => rawPathValues(obj, selector).some((v) => v !== undefined && matches(v, value));
  };
}

/** $near/$nearSphere are planned by the engine (operations.ts); they only reach mingo where MongoDB rejects them. */
const geoQueryOperators = {
  $geoWithin: geoOperator("$geoWithin", geoWithinMatches),
  // MongoDB still accepts the operator's old name.
  $within: geoOperator("$within", geoWithinMatches),
  $geoIntersects: geoOperator("$geoIntersects", geoIntersectsMatches),
  $near: () => nearNotAllowed(),
  $nearSphere: () => nearNotAllowed(),
};

/** Operators mingo would run differently from MongoDB (or not at all): refused before they run. */
function notImplemented(what: string): () => never {
  return () => {
    throw new CommandError(ErrorCode.NotImplemented, `${what} is not implemented by the embedded engine`);
  };
}
const serverSideJs = notImplemented("server-side JavaScript ($where, $function, $accumulator)");
const refusedQueryOperators = {
  $where: serverSideJs,
  $jsonSchema: notImplemented("$jsonSchema"),
};

/** Text indexes cannot be created, so this is MongoDB's own answer to every $text query here. */
export function refuseText(filter: unknown): void {
  if (Array.isArray(filter)) {
    for (const f of filter) refuseText(f);
    return;
  }
  if (!isPlainObject(filter)) return;
  if ("$text" in filter) throw new CommandError(ErrorCode.IndexNotFound, "text index required for $text query");
  for (const op of ["$and", "$or", "$nor"]) if (op in filter) refuseText(filter[op]);
}

// mingo types each operator group as the intersection of its members' signatures; ours follow the query-operator one.
const CONTEXT = Context.init({
  accumulator: { ...accumulatorOperators, $accumulator: serverSideJs },
  expression: { ...expressionOperators, $function: serverSideJs },
  pipeline: pipelineOperators,
  projection: projectionOperators,
  query: { ...queryOperators, ...geoQueryOperators, ...refusedQueryOperators },
  window: windowOperators,
} as unknown as Operators);

/** mingo's ComputeOptions (internal to mingo, so typed by what the engine uses). */
type ComputeOptions = NonNullable<Parameters<typeof updateOperators.$set>[2]>;
interface ComputeOptionsClass {
  init(options: object): ComputeOptions;
}

/** mingo does not export ComputeOptions; every operator receives one, so a probe operator hands us its class. */
function computeOptionsClass(): ComputeOptionsClass {
  let seen: ComputeOptions | null = null;
  const probe = Context.init({
    expression: {
      $engineProbe: (_obj: unknown, _expr: unknown, opts: ComputeOptions) => {
        seen = opts;
        return null;
      },
    },
  } as unknown as Operators);
  evalExpr({}, { $engineProbe: 1 }, { context: probe } as Parameters<typeof evalExpr>[2]);
  if (seen === null) throw new Error("mingo did not pass ComputeOptions to an operator");
  return (seen as { constructor: unknown }).constructor as ComputeOptionsClass;
}

const ComputeOptionsCtor = computeOptionsClass();
const BASE: Record<number, ComputeOptions> = {
  [ProcessingMode.CLONE_OFF]: ComputeOptionsCtor.init({ context: CONTEXT, processingMode: ProcessingMode.CLONE_OFF }),
  [ProcessingMode.CLONE_INPUT]: ComputeOptionsCtor.init({ context: CONTEXT, processingMode: ProcessingMode.CLONE_INPUT }),
};

export interface RunOptions {
  variables?: Variables;
  processingMode?: ProcessingMode.CLONE_OFF | ProcessingMode.CLONE_INPUT;
  /** Resolves $lookup/$unionWith collection names (costs an operator-table copy; pass only when needed). */
  collectionResolver?: (name: string) => Document[];
}

type MingoOptions = ConstructorParameters<typeof Query>[1];

function options(opts: RunOptions = {}, locals: object = {}): MingoOptions {
  const mode = opts.processingMode ?? ProcessingMode.CLONE_OFF;
  if (opts.collectionResolver) {
    return { context: CONTEXT, processingMode: mode, variables: opts.variables, collectionResolver: opts.collectionResolver };
  }
  const o = ComputeOptionsCtor.init(BASE[mode]);
  o.update({ ...locals, variables: opts.variables });
  return o as unknown as MingoOptions;
}

export function createQuery(filter: Document, opts?: RunOptions): Query {
  return new Query(filter, options(opts));
}

export function createAggregator(stages: Document[], opts?: RunOptions): Aggregator {
  return new Aggregator(stages, options(opts));
}

type UpdateOperator = (expr: Document, arrayFilters: Document[], options: ComputeOptions) => (obj: Document) => string[];
const UPDATE_OPERATORS = updateOperators as unknown as Record<string, UpdateOperator | undefined>;

/**
 * Applies update operators to `doc` in place (arrayFilters; the positional `$` resolves against
 * `condition`). Calls mingo's operators directly: its update() entry point re-registers
 * operators into the context on every call.
 */
export function updateInPlace(doc: Document, modifier: Document, arrayFilters: Document[] | undefined, condition: Document | undefined, variables?: Variables): void {
  const opts = options({ variables }, { condition: condition ?? {}, updateConfig: { cloneMode: "copy" } }) as unknown as ComputeOptions;
  for (const [op, expr] of Object.entries(modifier)) {
    const fn = UPDATE_OPERATORS[op];
    if (!fn) throw badValue(`Unknown modifier: ${op}`);
    fn(expr as Document, arrayFilters ?? [], opts)(doc);
  }
}
