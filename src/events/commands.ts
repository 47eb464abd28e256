import type { EndpointSpec, NetworkSpec, PortBinding } from './types.ts';

/** What a caller asks for. `decide` turns a command into events or refuses it. */
export type Command =
  | { readonly type: 'CreateNetwork'; readonly spec: NetworkSpec }
  | { readonly type: 'DeleteNetwork'; readonly networkId: string }
  | { readonly type: 'RollbackNetwork'; readonly networkId: string; readonly reason: string }
  | { readonly type: 'CreateEndpoint'; readonly spec: EndpointSpec }
  | { readonly type: 'Join'; readonly networkId: string; readonly endpointId: string; readonly sandboxKey: string }
  | { readonly type: 'Leave'; readonly networkId: string; readonly endpointId: string }
  | { readonly type: 'DeleteEndpoint'; readonly networkId: string; readonly endpointId: string }
  | { readonly type: 'RollbackEndpoint'; readonly networkId: string; readonly endpointId: string; readonly reason: string }
  | {
      readonly type: 'ProgramExternal';
      readonly networkId: string;
      readonly endpointId: string;
      readonly portmap: readonly PortBinding[];
    }
  | { readonly type: 'RevokeExternal'; readonly networkId: string; readonly endpointId: string }
  | { readonly type: 'MarkLost'; readonly endpointId: string; readonly reason: string }
  | {
      readonly type: 'RecordReconcile';
      readonly trigger: string;
      readonly actions: readonly string[];
      readonly failures: readonly string[];
    };
