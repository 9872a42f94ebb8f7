// Original file: agent/control/proto/control.proto


export interface ExplainResponse {
  'explanation'?: (Buffer | Uint8Array | string);
}

export interface ExplainResponse__Output {
  'explanation': (Buffer);
}
