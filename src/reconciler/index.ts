export * from './actions.ts';
export * from './desired.ts';
export { plan, isOwnedLink, sortActions } from './plan.ts';
export { applyActions, type ApplyResult, type Failure } from './apply.ts';
export { Reconciler, type PassResult, type ReconcilerDeps } from './loop.ts';
export { renderPlan, planJson, symbol, describeItem, PLAN_SCHEMA_VERSION, type PlanItem, type PlanJson, type RenderOptions } from './render.ts';
export { planClusterObjects } from './cluster.ts';
export { OutcomeRecorder, describeFailure, failureCode, markLost } from './outcome.ts';
export { forwardingProblem } from './forwarding.ts';
