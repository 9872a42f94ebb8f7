// Original file: agent/control/proto/control.proto


export interface SyncResponse {
  'versionInfo'?: (string);
  'nonce'?: (string);
  'typeUrl'?: (string);
  'resource'?: (Buffer | Uint8Array | string);
  'trustBundle'?: (string)[];
}

export interface SyncResponse__Output {
  'versionInfo': (string);
  'nonce': (string);
  'typeUrl': (string);
  'resource': (Buffer);
  'trustBundle': (string)[];
}
