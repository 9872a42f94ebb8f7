// Original file: agent/control/proto/control.proto


export interface StatusRequest {
  'node'?: (string);
}

export interface StatusRequest__Output {
  'node': (string);
}
