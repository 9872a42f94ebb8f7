// Original file: agent/control/proto/control.proto

import type { Resource as _weft_control_v1_Resource, Resource__Output as _weft_control_v1_Resource__Output } from '../../../weft/control/v1/Resource';

export interface SyncResponse {
  'versionInfo'?: (string);
  'nonce'?: (string);
  'typeUrl'?: (string);
  'resource'?: (Buffer | Uint8Array | string);
  'trustBundle'?: (string)[];
  'resources'?: (_weft_control_v1_Resource)[];
  'removedResources'?: (string)[];
}

export interface SyncResponse__Output {
  'versionInfo': (string);
  'nonce': (string);
  'typeUrl': (string);
  'resource': (Buffer);
  'trustBundle': (string)[];
  'resources': (_weft_control_v1_Resource__Output)[];
  'removedResources': (string)[];
}
