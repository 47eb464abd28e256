export { createPlugin, createPluginApp, type ApiDeps } from './plugin.ts';
export type { CallReply, PluginCall } from './failure.ts';
