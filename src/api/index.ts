export { createPlugin, type ApiDeps, type Plugin } from './plugin.ts';
export type { CallReply, PluginCall } from './failure.ts';
